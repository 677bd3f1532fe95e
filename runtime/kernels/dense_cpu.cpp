// bf16 projections and attention for CPU inference with fp32 activations.
//
// PyTorch's bf16 matmul on CPUs without bf16 instructions runs far below memory bandwidth;
// here weights are widened in registers (bf16 is the top half of an fp32) and accumulated in
// fp32, several rows and tokens per pass so each load feeds more than one FMA.
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include "cpu_kernels.h"

using oss_agent::bf16_to_float;

namespace {

constexpr int kRows = 4;  // weight rows per pass
constexpr int kChunk = 16;  // bf16 weights per 256-bit load
// Below this many multiply-adds a thread team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
constexpr int64_t kAttentionParallelMin = 1 << 22;

// x reordered per chunk of 16 as [8 even elements, 8 odd elements]: a 256-bit load of 16
// bf16 weights widens to its even elements with one shift and to its odd ones with one mask,
// with no cross-lane shuffle. A remainder past the last whole chunk keeps its order.
void split_even_odd(const float* x, int64_t K, float* out) {
  const int64_t whole = K / kChunk * kChunk;
  for (int64_t c = 0; c < whole; c += kChunk)
    for (int j = 0; j < kChunk / 2; ++j) {
      out[c + j] = x[c + 2 * j];
      out[c + kChunk / 2 + j] = x[c + 2 * j + 1];
    }
  std::copy(x + whole, x + K, out + whole);
}

// kTokens tokens x kRows rows: y[t][r] = sum_k w[r][k] x[t][k], x from split_even_odd.
template <int kTokens>
void tile(const float* const* x, const uint16_t* const* w, int64_t K, float out[][kRows]) {
  int64_t k = 0;
#ifdef __AVX2__
  const __m256i high = _mm256_set1_epi32(int32_t(0xffff0000u));
  __m256 acc[kTokens][kRows];
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < kRows; ++r) acc[t][r] = _mm256_setzero_ps();
  for (; k + kChunk <= K; k += kChunk) {
    __m256 even[kTokens], odd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      even[t] = _mm256_loadu_ps(x[t] + k);
      odd[t] = _mm256_loadu_ps(x[t] + k + kChunk / 2);
    }
    for (int r = 0; r < kRows; ++r) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r] + k));
      const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
      const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(raw, high));
      for (int t = 0; t < kTokens; ++t) {
        acc[t][r] = _mm256_fmadd_ps(we, even[t], acc[t][r]);
        acc[t][r] = _mm256_fmadd_ps(wo, odd[t], acc[t][r]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < kRows; ++r) out[t][r] = oss_agent::hsum(acc[t][r]);
#else
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < kRows; ++r) out[t][r] = 0.0f;
  for (; k + kChunk <= K; k += kChunk)
    for (int j = 0; j < kChunk / 2; ++j)
      for (int t = 0; t < kTokens; ++t)
        for (int r = 0; r < kRows; ++r)
          out[t][r] += bf16_to_float(w[r][k + 2 * j]) * x[t][k + j] +
                       bf16_to_float(w[r][k + 2 * j + 1]) * x[t][k + kChunk / 2 + j];
#endif
  for (; k < K; ++k)
    for (int t = 0; t < kTokens; ++t)
      for (int r = 0; r < kRows; ++r) out[t][r] += bf16_to_float(w[r][k]) * x[t][k];
}

}  // namespace

// y [T, R] fp32 = x [T, K] @ weight [R, K] (bf16).T + bias (bf16, optional) + residual
// (fp32 [T, R], optional).
torch::Tensor linear_bf16(const torch::Tensor& x, const torch::Tensor& weight,
                          const c10::optional<torch::Tensor>& bias,
                          const c10::optional<torch::Tensor>& residual) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "linear_bf16: expected x [T, K] and weight [R, K], got ", x.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(weight.scalar_type() == torch::kBFloat16, "linear_bf16: weight must be bf16");
  const torch::Tensor xf = x.to(torch::kFloat).contiguous(), w = weight.contiguous();
  const int64_t T = xf.size(0), K = xf.size(1), R = w.size(0);
  torch::Tensor b;
  if (bias.has_value()) {
    b = oss_agent::fp32_or_bf16(*bias);
    TORCH_CHECK(b.numel() == R, "linear_bf16: bias has ", b.numel(), " values, not ", R);
  }
  torch::Tensor res;
  if (residual.has_value()) {
    res = residual->contiguous();
    TORCH_CHECK(res.scalar_type() == torch::kFloat && res.numel() == T * R,
                "linear_bf16: the residual must be fp32 [T, R]");
  }
  std::vector<float> split(T * K);
  for (int64_t t = 0; t < T; ++t)
    split_even_odd(xf.data_ptr<float>() + t * K, K, split.data() + t * K);
  torch::Tensor y = torch::empty({T, R}, xf.options());
  const float* xp = split.data();
  const auto* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  const std::optional<oss_agent::Floats> bp =
      b.defined() ? std::optional<oss_agent::Floats>(b) : std::nullopt;
  float* yp = y.data_ptr<float>();
  const float* rp = res.defined() ? res.data_ptr<float>() : nullptr;
  const int64_t tiles = (R + kRows - 1) / kRows;
  // Dynamic: on a busy machine a thread that loses its core leaves its tiles to the others.
#pragma omp parallel for schedule(dynamic, 8) num_threads(at::get_num_threads()) \
    if (T * R * K >= kParallelMin)
  for (int64_t i = 0; i < tiles; ++i) {
    const int64_t r0 = i * kRows;
    const uint16_t* rows[kRows];
    for (int r = 0; r < kRows; ++r) rows[r] = wp + std::min(r0 + r, R - 1) * K;
    float out[2][kRows];
    for (int64_t t = 0; t < T; t += 2) {
      const float* xs[2] = {xp + t * K, xp + std::min(t + 1, T - 1) * K};
      if (t + 1 < T) {
        tile<2>(xs, rows, K, out);
      } else {
        tile<1>(xs, rows, K, out);
      }
      for (int dt = 0; dt < 2 && t + dt < T; ++dt)
        for (int r = 0; r < kRows && r0 + r < R; ++r) {
          const int64_t at = (t + dt) * R + r0 + r;
          yp[at] = out[dt][r] + (bp ? (*bp)[r0 + r] : 0.0f) + (rp ? rp[at] : 0.0f);
        }
    }
  }
  return y;
}

namespace {

template <typename KV>
inline float load(const KV* p, int64_t i) {
  if constexpr (std::is_same_v<KV, at::BFloat16>) {
    return bf16_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
  } else {
    return p[i];
  }
}

// One cached key or value row widened to fp32 (bf16 is the top half of an fp32).
template <typename KV>
inline void widen(const KV* __restrict__ row, int64_t d, float* __restrict__ out) {
  for (int64_t i = 0; i < d; ++i) out[i] = load(row, i);
}

constexpr int kSlots = 4;  // cache slots per step: each query row load feeds 4 FMAs
template <int kR>
using Slots = std::integral_constant<int, kR>;  // a slot count, as a lambda's argument

// out[r] = q . rows[r] (rows [kR, d], one after the other) for kR <= kSlots rows.
template <int kR>
inline void dots(const float* __restrict__ q, const float* __restrict__ rows, int64_t d,
                 float* __restrict__ out) {
  int64_t i = 0;
  for (int r = 0; r < kR; ++r) out[r] = 0.0f;
#ifdef __AVX2__
  __m256 acc[kR];
  for (int r = 0; r < kR; ++r) acc[r] = _mm256_setzero_ps();
  for (; i + 8 <= d; i += 8) {
    const __m256 qi = _mm256_loadu_ps(q + i);
    for (int r = 0; r < kR; ++r)
      acc[r] = _mm256_fmadd_ps(qi, _mm256_loadu_ps(rows + r * d + i), acc[r]);
  }
  if constexpr (kR == 4) {  // four sums reduced together: [sum 0, sum 1, sum 2, sum 3]
    const __m256 sums =
        _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(sums), _mm256_extractf128_ps(sums, 1)));
  } else {
    for (int r = 0; r < kR; ++r) out[r] = oss_agent::hsum(acc[r]);
  }
#endif
  for (; i < d; ++i)
    for (int r = 0; r < kR; ++r) out[r] += q[i] * rows[r * d + i];
}

// out += sum_r weights[r] x rows[r] (rows [kR, d]): one load and store of out per kR rows.
template <int kR>
inline void add_weighted(const float* __restrict__ rows, const float* weights, int64_t d,
                         float* __restrict__ out) {
  for (int64_t i = 0; i < d; ++i) {
    float sum = out[i];
    for (int r = 0; r < kR; ++r) sum += weights[r] * rows[r * d + i];
    out[i] = sum;
  }
}

// exp(x[i] - shift[i]) for n values, where x[i] - shift[i] <= 0 (softmax after its max).
void exp_shifted(const float* __restrict__ x, const float* __restrict__ shift, int64_t n,
                 float* __restrict__ out) {
  int64_t i = 0;
#ifdef __AVX2__
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(shift + i));
    _mm256_storeu_ps(out + i, oss_agent::exp_nonpositive(v));
  }
#endif
  for (; i < n; ++i) out[i] = std::exp(x[i] - shift[i]);
}

// Per-thread buffers of attend_heads, reused across its calls.
struct Scratch {
  std::vector<float> rows, scores;  // kSlots widened rows [kSlots, d]; [visible keys, heads]
  std::vector<float> top, total;    // per head: the largest score (or sink), the softmax sum
  std::vector<int64_t> visible;     // the cache slots the query sees
};

// One query against the visible cache cells, for the query heads of KV heads [kv0, kv1):
// softmax over [scores, sink] per head, sink dropped. Cells are read kSlots slots at a time,
// each slot's rows for these KV heads side by side in memory and widened once for their
// group (head by head, a long cache was read in 1 KiB strides and eight times over).
template <typename KV>
void attend_heads(const float* q, const KV* keys, const KV* values, const int64_t* key_pos,
                  int64_t S, int64_t KVH, int64_t d, int64_t group, int64_t kv0, int64_t kv1,
                  int64_t position, int64_t window, const float* sinks, float scale,
                  Scratch& scratch, float* out) {
  const int64_t heads = (kv1 - kv0) * group, stride = KVH * d;
  scratch.rows.resize(kSlots * d);
  scratch.visible.resize(S);
  int64_t n = 0;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t p = key_pos[s];
    if (p >= 0 && p <= position && (window <= 0 || p > position - window))
      scratch.visible[n++] = s;
  }
  scratch.scores.resize(std::max<int64_t>(n, 1) * heads);
  float* rows = scratch.rows.data();
  float* scores = scratch.scores.data();
  // kR slots' rows for KV head kv, widened side by side into `rows`.
  auto widen_rows = [&](const KV* cache, int64_t j, int kR, int64_t kv) {
    for (int r = 0; r < kR; ++r)
      widen(cache + scratch.visible[j + r] * stride + kv * d, d, rows + r * d);
  };
  auto score_slots = [&](auto slots, int64_t j) {
    constexpr int kR = decltype(slots)::value;
    float sums[kR];
    for (int64_t kv = kv0; kv < kv1; ++kv) {
      widen_rows(keys, j, kR, kv);
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = (kv - kv0) * group + g;
        dots<kR>(q + h * d, rows, d, sums);
        for (int r = 0; r < kR; ++r) scores[(j + r) * heads + h] = sums[r] * scale;
      }
    }
  };
  int64_t j = 0;
  for (; j + kSlots <= n; j += kSlots) score_slots(Slots<kSlots>{}, j);
  for (; j < n; ++j) score_slots(Slots<1>{}, j);
  // Softmax over [scores, sink] per head, every pass along a key's row of heads; the weights
  // stay unnormalized and each head's output is divided by its sum at the end.
  float* top = (scratch.top.assign(sinks, sinks + heads), scratch.top.data());
  for (j = 0; j < n; ++j)
    for (int64_t h = 0; h < heads; ++h) top[h] = std::max(top[h], scores[j * heads + h]);
  float* total = (scratch.total.resize(heads), scratch.total.data());
  exp_shifted(sinks, top, heads, total);
  for (j = 0; j < n; ++j) {
    exp_shifted(scores + j * heads, top, heads, scores + j * heads);
    for (int64_t h = 0; h < heads; ++h) total[h] += scores[j * heads + h];
  }
  std::fill(out, out + heads * d, 0.0f);
  auto add_slots = [&](auto slots, int64_t j) {
    constexpr int kR = decltype(slots)::value;
    float weights[kR];
    for (int64_t kv = kv0; kv < kv1; ++kv) {
      widen_rows(values, j, kR, kv);
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = (kv - kv0) * group + g;
        for (int r = 0; r < kR; ++r) weights[r] = scores[(j + r) * heads + h];
        add_weighted<kR>(rows, weights, d, out + h * d);
      }
    }
  };
  for (j = 0; j + kSlots <= n; j += kSlots) add_slots(Slots<kSlots>{}, j);
  for (; j < n; ++j) add_slots(Slots<1>{}, j);
  for (int64_t h = 0; h < heads; ++h) {
    const float inverse = 1.0f / total[h];
    for (int64_t i = 0; i < d; ++i) out[h * d + i] *= inverse;
  }
}

template <typename KV>
void attention_all(const float* q, const KV* keys, const KV* values, const int64_t* key_pos,
                   const int64_t* positions, const float* sinks, int64_t T, int64_t H,
                   int64_t KVH, int64_t S, int64_t d, int64_t window, float* out) {
  const int64_t group = H / KVH;
  const float scale = 1.0f / std::sqrt(float(d));
  const bool parallel = T * H * S * d >= kAttentionParallelMin;
  // Work items: a query's KV heads split in parts, enough parts for every thread to get one.
  const int64_t threads = parallel ? at::get_num_threads() : 1;
  const int64_t parts = std::min(KVH, std::max<int64_t>(1, threads / T));
  // Decode attention is small next to the projections around it: one thread, no barrier.
#pragma omp parallel num_threads(at::get_num_threads()) if (parallel)
  {
    Scratch scratch;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < T * parts; ++i) {
      const int64_t t = i / parts, part = i % parts;
      const int64_t kv0 = part * KVH / parts, kv1 = (part + 1) * KVH / parts;
      const int64_t h0 = kv0 * group;
      attend_heads(q + (t * H + h0) * d, keys, values, key_pos, S, KVH, d, group, kv0, kv1,
                   positions[t], window, sinks + h0, scale, scratch, out + (t * H + h0) * d);
    }
  }
}

}  // namespace

// Grouped-query attention with sinks over the given cache cells, in fp32: q [T, H, d] at
// `positions` [T]; keys/values [S, KV, d] (fp32 or bf16) at key_pos [S] (-1: empty). A key
// is visible when 0 <= pos <= query position and, with window > 0, pos > position - window.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& keys,
                        const torch::Tensor& values, const torch::Tensor& key_pos,
                        const torch::Tensor& positions, const torch::Tensor& sinks,
                        int64_t window) {
  TORCH_CHECK(q.dim() == 3 && keys.dim() == 3 && values.sizes() == keys.sizes(),
              "attention: expected q [T, H, d] and keys/values [S, KV, d]");
  const int64_t T = q.size(0), H = q.size(1), d = q.size(2), S = keys.size(0),
                KVH = keys.size(1);
  TORCH_CHECK(keys.size(2) == d && H % KVH == 0 && key_pos.numel() == S &&
                  positions.numel() == T && sinks.numel() == H,
              "attention: shapes disagree");
  TORCH_CHECK(keys.scalar_type() == values.scalar_type(), "attention: keys and values differ");
  const torch::Tensor qf = q.to(torch::kFloat).contiguous();
  const torch::Tensor k = keys.contiguous(), v = values.contiguous();
  const torch::Tensor kp = key_pos.to(torch::kLong).contiguous();
  const torch::Tensor pos = positions.to(torch::kLong).contiguous();
  const torch::Tensor sk = oss_agent::fp32_or_bf16(sinks);
  const oss_agent::Floats sink_floats(sk);
  std::vector<float> sink_values(H);
  for (int64_t h = 0; h < H; ++h) sink_values[h] = sink_floats[h];
  torch::Tensor out = torch::empty({T, H * d}, qf.options());
  if (k.scalar_type() == torch::kBFloat16) {
    attention_all(qf.data_ptr<float>(), k.data_ptr<at::BFloat16>(),
                  v.data_ptr<at::BFloat16>(), kp.data_ptr<int64_t>(), pos.data_ptr<int64_t>(),
                  sink_values.data(), T, H, KVH, S, d, window, out.data_ptr<float>());
  } else {
    TORCH_CHECK(k.scalar_type() == torch::kFloat, "attention: keys must be fp32 or bf16");
    attention_all(qf.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                  kp.data_ptr<int64_t>(), pos.data_ptr<int64_t>(), sink_values.data(), T, H,
                  KVH, S, d, window, out.data_ptr<float>());
  }
  return out;
}
