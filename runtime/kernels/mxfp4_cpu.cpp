// Fused MXFP4 dequantize-and-multiply for CPU decode. Unpacking a whole expert to bf16 costs
// far more than the matvec it feeds, so this reads the packed 4.25-bit weights once, unpacks
// each block of 32 into registers and applies it to every token.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu_kernels.h"

namespace {

constexpr int kBlock = 32;
// E2M1 codes doubled so they are int8 (0, 0.5, ..., 6 -> 0, 1, ..., 12); the scale halves.
alignas(16) constexpr int8_t kDoubled[16] = {0, 1, 2, 3, 4, 6, 8, 12,
                                             0, -1, -2, -3, -4, -6, -8, -12};

// 2^(scale - 127) / 2 for each E8M0 byte: a lookup instead of a libm call per block.
struct Factors {
  float value[256];
  Factors() {
    for (int s = 0; s < 256; ++s) value[s] = std::ldexp(0.5f, s - 127);
  }
};
const Factors kFactors;

// The 32 weights of one block (16 bytes, low nibble first) times 2^(scale - 127): exact.
inline void unpack_block(const uint8_t* bytes, uint8_t scale, float* __restrict__ w) {
  const float factor = kFactors.value[scale];
#ifdef __AVX2__
  const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(kDoubled));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
  const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(packed, mask));
  const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(packed, 4), mask));
  const __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);
  const __m256 f = _mm256_set1_ps(factor);
  const __m128i quarters[4] = {first, _mm_srli_si128(first, 8), second,
                               _mm_srli_si128(second, 8)};
  for (int q = 0; q < 4; ++q) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(quarters[q]));
    _mm256_storeu_ps(w + 8 * q, _mm256_mul_ps(v, f));
  }
#else
  for (int i = 0; i < kBlock / 2; ++i) {
    w[2 * i] = kDoubled[bytes[i] & 15] * factor;
    w[2 * i + 1] = kDoubled[bytes[i] >> 4] * factor;
  }
#endif
}

// Below this many block x token products a thread team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 14;

// Rows split over threads; kT > 0 fixes the token count at compile time, so the 32 lane
// sums per token can stay in registers.
template <int kT>
void rows(const float* xp, const uint8_t* bp, const uint8_t* sp, const float* biasp, float* yp,
          int64_t tokens, int64_t R, int64_t G) {
  const int64_t T = kT > 0 ? kT : tokens, K = G * kBlock;
#pragma omp parallel num_threads(at::get_num_threads()) if (R * G * T >= kParallelMin)
  {
    // Per token, 32 lane sums: the inner loop is a plain vector FMA, no reduction.
    std::vector<float> heap(kT > 0 ? 0 : T * kBlock);
    alignas(32) float fixed[kT > 0 ? kT * kBlock : 1];
    float* acc = kT > 0 ? fixed : heap.data();
    alignas(32) float w[kBlock];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      std::fill(acc, acc + T * kBlock, 0.0f);
      for (int64_t g = 0; g < G; ++g) {
        unpack_block(bp + (r * G + g) * (kBlock / 2), sp[r * G + g], w);
        for (int64_t t = 0; t < T; ++t) {
          const float* __restrict__ xt = xp + t * K + g * kBlock;
          float* __restrict__ a = acc + t * kBlock;
          for (int j = 0; j < kBlock; ++j) a[j] += w[j] * xt[j];
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        float sum = biasp ? biasp[r] : 0.0f;
        for (int j = 0; j < kBlock; ++j) sum += acc[t * kBlock + j];
        yp[t * R + r] = sum;
      }
    }
  }
}

}  // namespace

// y[t, r] = bias[r] + sum_k W[r, k] x[t, k], W given as blocks uint8 [R, K/32, 16] and
// scales uint8 [R, K/32]; fp32 arithmetic, result in x's dtype.
torch::Tensor mxfp4_linear(const torch::Tensor& x, const torch::Tensor& blocks,
                           const torch::Tensor& scales, const c10::optional<torch::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && blocks.dim() == 3 && scales.dim() == 2 && blocks.size(2) == 16,
              "mxfp4_linear: expected x [T, K], blocks [R, K/32, 16], scales [R, K/32]");
  TORCH_CHECK(x.is_cpu() && blocks.is_cpu() && scales.is_cpu(), "mxfp4_linear: CPU only");
  TORCH_CHECK(blocks.scalar_type() == torch::kUInt8 && scales.scalar_type() == torch::kUInt8,
              "mxfp4_linear: blocks and scales must be uint8");
  const int64_t T = x.size(0), R = blocks.size(0), G = blocks.size(1), K = G * kBlock;
  TORCH_CHECK(x.size(1) == K && scales.size(0) == R && scales.size(1) == G,
              "mxfp4_linear: shapes disagree");
  const torch::Tensor xf = x.to(torch::kFloat).contiguous();
  const torch::Tensor b = blocks.contiguous(), s = scales.contiguous();
  torch::Tensor bf;
  if (bias.has_value()) {
    bf = bias->to(torch::kFloat).contiguous();
    TORCH_CHECK(bf.numel() == R, "mxfp4_linear: bias has ", bf.numel(), " values, not ", R);
  }
  torch::Tensor y = torch::empty({T, R}, xf.options());
  const float* xp = xf.data_ptr<float>();
  const uint8_t* bp = b.data_ptr<uint8_t>();
  const uint8_t* sp = s.data_ptr<uint8_t>();
  const float* biasp = bf.defined() ? bf.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();

  switch (T) {
    case 1: rows<1>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 2: rows<2>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 3: rows<3>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 4: rows<4>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 5: rows<5>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 6: rows<6>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 7: rows<7>(xp, bp, sp, biasp, yp, T, R, G); break;
    case 8: rows<8>(xp, bp, sp, biasp, yp, T, R, G); break;
    default: rows<0>(xp, bp, sp, biasp, yp, T, R, G);
  }
  return y.to(x.scalar_type());
}


namespace {

// ---- The whole MoE layer in one call --------------------------------------------------------
// In the exact path, activations are laid out per block of 32 as [16 even elements, 16 odd
// elements]: the order in which the low and high nibbles of a packed block come out, so
// weights need no interleaving. The quantized path (int8 per block of 32, scale absmax / 127)
// works on pairs of blocks, one 256-bit register each: per pair [even of block g, even of
// g + 1, odd of g, odd of g + 1] (a last unpaired block: [even, odd]). Weights are unpacked
// to unsigned codes w + 12 (0..24, what the unsigned operand of maddubs takes); each block's
// integer dot product is exact and is scaled once by both blocks' scales. The offset is
// taken back per block, 8 blocks per multiply-add: sum w x = sum (w + 12) x - 12 sum x.

constexpr int kMaxTokens = 4;  // tokens per pass over a weight row (accumulators in registers)
constexpr int kRowsPerItem = 64;  // long stretches per thread: at 2 threads ~15% faster than 16
constexpr int kOffset = 12;
constexpr int64_t kPrefetchAhead = 2048;  // bytes of packed weights ahead of the loads
alignas(16) constexpr int8_t kOffsetCodes[16] = {12, 13, 14, 15, 16, 18, 20, 24,
                                                 12, 11, 10, 9,  8,  6,  4,  0};

struct Activations {
  bool exact;
  int64_t K, G;           // elements and blocks per row
  std::vector<float> f;   // exact: permuted fp32 [rows, K]
  std::vector<int8_t> q;  // quantized: int8 [rows, K], pair layout
  // quantized, per row and block: half its scale (a weight block's factor is then the power
  // of two 2^(e - 127) of its E8M0 byte e) and that times -12 x the sum of its int8 values.
  std::vector<float> scale, offset;

  Activations(bool exact_, int64_t rows, int64_t K_) : exact(exact_), K(K_), G(K_ / kBlock) {
    if (exact) {
      f.resize(rows * K);
    } else {
      q.resize(rows * K);
      scale.resize(rows * G);
      offset.resize(rows * G);
    }
  }

  // Where block g's even elements start in a row; its odd ones follow `odd_after(g)` later.
  int64_t even_at(int64_t g) const { return g / 2 * 2 * kBlock + (g % 2) * (kBlock / 2); }
  int64_t odd_after(int64_t g) const { return (g % 2 == 0 && g == G - 1) ? kBlock / 2 : kBlock; }

  void set(int64_t row, const float* x) {
    for (int64_t g = 0; g < G; ++g) {
      const float* b = x + g * kBlock;
      if (exact) {
        float* out = f.data() + row * K + g * kBlock;
        for (int j = 0; j < kBlock / 2; ++j) {
          out[j] = b[2 * j];
          out[kBlock / 2 + j] = b[2 * j + 1];
        }
        continue;
      }
      float amax = 0.0f;
      for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(b[j]));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      int8_t* even = q.data() + row * K + even_at(g);
      int8_t* odd = even + odd_after(g);
      int32_t sum = 0;
      for (int j = 0; j < kBlock / 2; ++j) {
        even[j] = int8_t(std::nearbyint(b[2 * j] * inv));
        odd[j] = int8_t(std::nearbyint(b[2 * j + 1] * inv));
        sum += even[j] + odd[j];
      }
      scale[row * G + g] = amax / 127.0f * 0.5f;
      offset[row * G + g] = scale[row * G + g] * float(-kOffset * sum);
    }
  }
};

// 2^(e - 127) for an E8M0 byte e.
inline float weight_factor(uint8_t e) { return 2.0f * kFactors.value[e]; }

// Dot products of one packed weight row (G blocks) with n <= kMaxTokens activation rows.
// `ahead`: prefetch the weights that follow (on the first pass over a row only; later passes
// find the row in cache).
template <int kN>
void dot_quantized(const uint8_t* wb, const uint8_t* ws, int64_t G, const Activations& a,
                   const int64_t* rows, float* out, bool ahead) {
  const int64_t K = a.K;
#ifdef __AVX2__
  const __m256i table = _mm256_broadcastsi128_si256(
      _mm_load_si128(reinterpret_cast<const __m128i*>(kOffsetCodes)));
  const __m256i mask = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  // One token alone would wait on the latency of a single FMA chain: two accumulators then.
  constexpr int kChains = kN == 1 ? 2 : 1;
  __m256 acc[kN][kChains];
  for (int i = 0; i < kN; ++i)
    for (int c = 0; c < kChains; ++c) acc[i][c] = _mm256_setzero_ps();
  // Blocks 2p and 2p + 1 against each token; scales[i] holds the two blocks' combined
  // weight x activation scales for token i, 4 lanes each.
  auto pair = [&](int64_t p, const __m256* scales) {
    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + p * 32));
    const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(packed, mask));
    const __m256i hi =
        _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask));
    for (int i = 0; i < kN; ++i) {
      const int8_t* x = a.q.data() + rows[i] * K + p * 2 * kBlock;
      const __m256i even = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
      const __m256i odd = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + kBlock));
      const __m256i pairs =
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, even), _mm256_maddubs_epi16(hi, odd));
      const __m256i sums = _mm256_madd_epi16(pairs, ones);
      acc[i][p % kChains] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales[i], acc[i][p % kChains]);
    }
  };
  int64_t p = 0;
  for (; p + 4 <= G / 2; p += 4) {
    // One thread streams at the memory latency's pace unless it asks ahead: the hardware
    // prefetcher stops at each 4 KiB page. Past the row's end this fetches the next row (a
    // prefetch never faults, past the last row either).
    if (ahead) {
      _mm_prefetch(reinterpret_cast<const char*>(wb + p * 32 + kPrefetchAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wb + p * 32 + kPrefetchAhead + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ws + 2 * p + kPrefetchAhead / 16), _MM_HINT_T0);
    }
    // The 8 blocks' weight factors 2^(e - 127) at once: the floats whose exponent field is e
    // (e = 0, a block of weights under 1e-38, reads as 0).
    const __m256 factors = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ws + 2 * p))), 23));
    __m256 combined[kN], scales[kN];
    for (int i = 0; i < kN; ++i) {
      const int64_t at = rows[i] * G + 2 * p;
      combined[i] = _mm256_mul_ps(factors, _mm256_loadu_ps(a.scale.data() + at));
      // the offsets of all 8 blocks; lanes are summed at the end, so any accumulator will do
      acc[i][0] = _mm256_fmadd_ps(factors, _mm256_loadu_ps(a.offset.data() + at), acc[i][0]);
    }
    for (int q = 0; q < 4; ++q) {
      const __m256i lanes = _mm256_setr_epi32(2 * q, 2 * q, 2 * q, 2 * q, 2 * q + 1, 2 * q + 1,
                                              2 * q + 1, 2 * q + 1);
      for (int i = 0; i < kN; ++i) scales[i] = _mm256_permutevar8x32_ps(combined[i], lanes);
      pair(p + q, scales);
    }
  }
  float tail[kN] = {};
  for (; p < G / 2; ++p) {
    const float f0 = weight_factor(ws[2 * p]), f1 = weight_factor(ws[2 * p + 1]);
    __m256 scales[kN];
    for (int i = 0; i < kN; ++i) {
      const int64_t at = rows[i] * G + 2 * p;
      scales[i] = _mm256_set_m128(_mm_set1_ps(f1 * a.scale[at + 1]), _mm_set1_ps(f0 * a.scale[at]));
      tail[i] += f0 * a.offset[at] + f1 * a.offset[at + 1];
    }
    pair(p, scales);
  }
  for (int i = 0; i < kN; ++i) {
    __m256 sum = acc[i][0];
    for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[i][c]);
    out[i] = oss_agent::hsum(sum) + tail[i];
  }
  if (G % 2) {  // the last, unpaired block: the same on 128 bits
    const int64_t g = G - 1;
    const __m128i table128 = _mm256_castsi256_si128(table);
    const __m128i mask128 = _mm256_castsi256_si128(mask);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + g * 16));
    const __m128i lo = _mm_shuffle_epi8(table128, _mm_and_si128(packed, mask128));
    const __m128i hi =
        _mm_shuffle_epi8(table128, _mm_and_si128(_mm_srli_epi16(packed, 4), mask128));
    const float factor = weight_factor(ws[g]);
    for (int i = 0; i < kN; ++i) {
      const int8_t* x = a.q.data() + rows[i] * K + g * kBlock;
      const __m128i even = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
      const __m128i odd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + kBlock / 2));
      const __m128i pairs = _mm_add_epi16(_mm_maddubs_epi16(lo, even), _mm_maddubs_epi16(hi, odd));
      const __m128i sums = _mm_madd_epi16(pairs, _mm256_castsi256_si128(ones));
      const int64_t at = rows[i] * G + g;
      out[i] += oss_agent::hsum(_mm_cvtepi32_ps(sums)) * (factor * a.scale[at]) +
                factor * a.offset[at];
    }
  }
#else
  for (int i = 0; i < kN; ++i) {
    float total = 0.0f;
    const int8_t* x = a.q.data() + rows[i] * K;
    for (int64_t g = 0; g < G; ++g) {
      const int8_t* even = x + a.even_at(g);
      const int8_t* odd = even + a.odd_after(g);
      int32_t sum = 0;
      for (int j = 0; j < kBlock / 2; ++j) {
        const uint8_t byte = wb[g * 16 + j];
        sum += kDoubled[byte & 15] * even[j] + kDoubled[byte >> 4] * odd[j];
      }
      total += float(sum) * kFactors.value[ws[g]] * 2.0f * a.scale[rows[i] * G + g];
    }
    out[i] = total;
  }
#endif
}

template <int kN>
void dot_exact(const uint8_t* wb, const uint8_t* ws, int64_t G, const Activations& a,
               const int64_t* rows, float* out) {
  const int64_t K = a.K;
#ifdef __AVX2__
  const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(kDoubled));
  const __m128i mask = _mm_set1_epi8(0x0f);
  __m256 acc[kN][2];
  for (int i = 0; i < kN; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + g * 16));
    const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(packed, mask));
    const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(packed, 4), mask));
    const __m256 f = _mm256_set1_ps(kFactors.value[ws[g]]);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    __m256 w[4];
    for (int p = 0; p < 4; ++p)
      w[p] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p])), f);
    for (int i = 0; i < kN; ++i) {
      const float* x = a.f.data() + rows[i] * K + g * kBlock;
      for (int p = 0; p < 4; ++p)
        acc[i][p & 1] = _mm256_fmadd_ps(w[p], _mm256_loadu_ps(x + 8 * p), acc[i][p & 1]);
    }
  }
  for (int i = 0; i < kN; ++i) out[i] = oss_agent::hsum(_mm256_add_ps(acc[i][0], acc[i][1]));
#else
  for (int i = 0; i < kN; ++i) {
    float total = 0.0f;
    const float* x = a.f.data() + rows[i] * K;
    for (int64_t g = 0; g < G; ++g) {
      const float factor = kFactors.value[ws[g]];
      for (int j = 0; j < kBlock / 2; ++j) {
        const uint8_t byte = wb[g * 16 + j];
        total += kDoubled[byte & 15] * factor * x[g * kBlock + j];
        total += kDoubled[byte >> 4] * factor * x[g * kBlock + kBlock / 2 + j];
      }
    }
    out[i] = total;
  }
#endif
}

template <int kN>
void dot(const uint8_t* wb, const uint8_t* ws, int64_t G, const Activations& a,
         const int64_t* rows, float* out, bool ahead) {
  if (a.exact) {
    dot_exact<kN>(wb, ws, G, a, rows, out);
  } else {
    dot_quantized<kN>(wb, ws, G, a, rows, out, ahead);
  }
}

// gpt-oss's clamped SwiGLU of one row h [2 I] of (gate, linear) pairs into g [I]:
// gate sigmoid(1.702 gate) (linear + 1), gate <= limit, -limit <= linear <= limit. Vectorized
// (a scalar exp per element took ~0.1 ms of every 20b MoE layer) with the sigmoid from
// e = exp(-|z|) <= 1: 1 / (1 + e) for z >= 0, e / (1 + e) below.
void swiglu(const float* h, int64_t I, float limit, float* g) {
  constexpr float kAlpha = 1.702f;
  int64_t i = 0;
#ifdef __AVX2__
  const __m256 lim = _mm256_set1_ps(limit), neg_lim = _mm256_set1_ps(-limit);
  const __m256 one = _mm256_set1_ps(1.0f), alpha = _mm256_set1_ps(kAlpha);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= I; i += 8) {
    const __m256 a = _mm256_loadu_ps(h + 2 * i), b = _mm256_loadu_ps(h + 2 * i + 8);
    // Even and odd elements, pairs of outputs in the order (0, 1), (4, 5), (2, 3), (6, 7).
    // The clamps keep a NaN, as std::min and std::max do.
    const __m256 gate = _mm256_min_ps(lim, _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m256 linear = _mm256_min_ps(
        lim, _mm256_max_ps(neg_lim, _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
    const __m256 z = _mm256_mul_ps(alpha, gate);
    const __m256 e = oss_agent::exp_nonpositive(_mm256_or_ps(z, sign));  // exp(-|z|)
    const __m256 inverse = _mm256_div_ps(one, _mm256_add_ps(one, e));
    const __m256 positive = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ);
    const __m256 sigmoid = _mm256_blendv_ps(_mm256_mul_ps(e, inverse), inverse, positive);
    const __m256 out = _mm256_mul_ps(_mm256_mul_ps(gate, sigmoid), _mm256_add_ps(linear, one));
    _mm256_storeu_ps(g + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(out),
                                                                   _MM_SHUFFLE(3, 1, 2, 0))));
  }
#endif
  for (; i < I; ++i) {
    const float gate = std::min(h[2 * i], limit);
    const float linear = std::min(std::max(h[2 * i + 1], -limit), limit);
    g[i] = gate / (1.0f + std::exp(-kAlpha * gate)) * (linear + 1.0f);
  }
}

// out[j, r] = bias[e, r] + W_e[r] . activations[inputs[j]] for the rows of one work item.
void expert_rows(const uint8_t* blocks, const uint8_t* scales, const oss_agent::Floats& bias,
                 int64_t e, int64_t R, int64_t G, int64_t r0, int64_t r1, const Activations& a,
                 const int64_t* inputs, int64_t n, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wb = blocks + (e * R + r) * G * 16;
    const uint8_t* ws = scales + (e * R + r) * G;
    const float b = bias[e * R + r];
    float sums[kMaxTokens];
    for (int64_t j = 0; j < n; j += kMaxTokens) {
      const int64_t m = std::min<int64_t>(kMaxTokens, n - j);
      const bool first = j == 0;
      switch (m) {
        case 1: dot<1>(wb, ws, G, a, inputs + j, sums, first); break;
        case 2: dot<2>(wb, ws, G, a, inputs + j, sums, first); break;
        case 3: dot<3>(wb, ws, G, a, inputs + j, sums, first); break;
        default: dot<4>(wb, ws, G, a, inputs + j, sums, first);
      }
      for (int64_t i = 0; i < m; ++i) out[(j + i) * R + r] = sums[i] + b;
    }
  }
}

}  // namespace

// x [T, H] fp32 -> sum over each token's k experts of weight * mlp2(swiglu(mlp1(x))), [T, H]
// fp32, plus `residual` [T, H] when given. experts/weights [T, k]; blocks/scales/biases for
// all E experts, as in the checkpoint. `exact` keeps activations in fp32; otherwise they are
// quantized to int8 per block of 32.
torch::Tensor moe_experts(const torch::Tensor& x, const torch::Tensor& experts,
                          const torch::Tensor& weights, const torch::Tensor& mlp1_blocks,
                          const torch::Tensor& mlp1_scales, const torch::Tensor& mlp1_bias,
                          const torch::Tensor& mlp2_blocks, const torch::Tensor& mlp2_scales,
                          const torch::Tensor& mlp2_bias, double limit, bool exact,
                          const c10::optional<torch::Tensor>& residual) {
  TORCH_CHECK(x.dim() == 2 && experts.dim() == 2 && weights.sizes() == experts.sizes() &&
                  experts.size(0) == x.size(0),
              "moe_experts: expected x [T, H] and experts, weights [T, k]");
  TORCH_CHECK(mlp1_blocks.dim() == 4 && mlp2_blocks.dim() == 4 && mlp1_scales.dim() == 3 &&
                  mlp2_scales.dim() == 3,
              "moe_experts: expected blocks [E, R, G, 16] and scales [E, R, G]");
  for (const auto* t : {&mlp1_blocks, &mlp1_scales, &mlp2_blocks, &mlp2_scales})
    TORCH_CHECK(t->scalar_type() == torch::kUInt8 && t->is_contiguous(),
                "moe_experts: packed experts must be contiguous uint8");
  const int64_t T = x.size(0), H = x.size(1), k = experts.size(1), E = mlp1_blocks.size(0);
  const int64_t R1 = mlp1_blocks.size(1), G1 = mlp1_blocks.size(2), I = R1 / 2;
  const int64_t R2 = mlp2_blocks.size(1), G2 = mlp2_blocks.size(2);
  TORCH_CHECK(G1 * kBlock == H && R2 == H && G2 * kBlock == I && mlp2_blocks.size(0) == E &&
                  mlp1_bias.sizes() == torch::IntArrayRef({E, R1}) &&
                  mlp2_bias.sizes() == torch::IntArrayRef({E, R2}),
              "moe_experts: shapes disagree");
  const torch::Tensor xf = x.to(torch::kFloat).contiguous();
  const torch::Tensor ex = experts.to(torch::kLong).contiguous();
  const torch::Tensor wt = weights.to(torch::kFloat).contiguous();
  const torch::Tensor b1 = oss_agent::fp32_or_bf16(mlp1_bias);
  const torch::Tensor b2 = oss_agent::fp32_or_bf16(mlp2_bias);
  const int64_t* exp = ex.data_ptr<int64_t>();
  const oss_agent::Floats bias1(b1), bias2(b2);
  torch::Tensor res;
  if (residual.has_value()) {
    res = residual->contiguous();
    TORCH_CHECK(res.scalar_type() == torch::kFloat && res.sizes() == x.sizes(),
                "moe_experts: the residual must be fp32 [T, H]");
  }
  const float* rp = res.defined() ? res.data_ptr<float>() : nullptr;

  // Assignments (token, slot) grouped by expert: the rows each expert multiplies.
  const int64_t A = T * k;
  std::vector<int64_t> start(E + 1, 0), token(A), slot_of(A);
  for (int64_t i = 0; i < A; ++i) {
    TORCH_CHECK(exp[i] >= 0 && exp[i] < E, "moe_experts: expert index out of range");
    ++start[exp[i] + 1];
  }
  for (int64_t e = 0; e < E; ++e) start[e + 1] += start[e];
  std::vector<int64_t> fill(start.begin(), start.end() - 1), assignments(A);
  for (int64_t i = 0; i < A; ++i) {
    const int64_t a = fill[exp[i]]++;
    token[a] = i / k;
    slot_of[i] = a;
    assignments[a] = a;
  }
  struct Item {
    int64_t e, r0, r1;
  };
  auto items_for = [&](int64_t R) {
    std::vector<Item> items;
    for (int64_t e = 0; e < E; ++e)
      if (start[e + 1] > start[e])
        for (int64_t r = 0; r < R; r += kRowsPerItem)
          items.push_back({e, r, std::min(R, r + kRowsPerItem)});
    return items;
  };
  const std::vector<Item> items1 = items_for(R1), items2 = items_for(R2);

  Activations in1(exact, T, H), in2(exact, A, I);
  std::vector<float> h1(A * R1), glu(A * I), y(A * R2);
  torch::Tensor out = torch::empty({T, H}, xf.options());
  const float* xp = xf.data_ptr<float>();
  const float* wp = wt.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float lim = float(limit);
  const auto* p1b = mlp1_blocks.data_ptr<uint8_t>();
  const auto* p1s = mlp1_scales.data_ptr<uint8_t>();
  const auto* p2b = mlp2_blocks.data_ptr<uint8_t>();
  const auto* p2s = mlp2_scales.data_ptr<uint8_t>();
  const bool parallel = A * (R1 * G1 + R2 * G2) >= kParallelMin;
  // Every barrier can cost a scheduler time slice on a busy machine: for a few tokens the
  // cheap steps (quantizing the input, summing the outputs) run outside the thread team.
  const bool few = T <= kMaxTokens;
  if (few)
    for (int64_t t = 0; t < T; ++t) in1.set(t, xp + t * H);
  auto combine = [&](int64_t t) {
    float* o = op + t * H;
    if (rp) {
      std::copy(rp + t * H, rp + (t + 1) * H, o);
    } else {
      std::fill(o, o + H, 0.0f);
    }
    for (int64_t s = 0; s < k; ++s) {
      const float w = wp[t * k + s];
      const float* ys = y.data() + slot_of[t * k + s] * R2;
      for (int64_t c = 0; c < H; ++c) o[c] += w * ys[c];
    }
  };

#pragma omp parallel num_threads(at::get_num_threads()) if (parallel)
  {
    if (!few) {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < T; ++t) in1.set(t, xp + t * H);
    }
#pragma omp for schedule(dynamic)
    for (size_t i = 0; i < items1.size(); ++i) {
      const Item& it = items1[i];
      const int64_t first = start[it.e], n = start[it.e + 1] - first;
      // Inputs of mlp1 are tokens; the output row is the assignment.
      expert_rows(p1b, p1s, bias1, it.e, R1, G1, it.r0, it.r1, in1, token.data() + first, n,
                  h1.data() + first * R1);
    }
#pragma omp for schedule(static)
    for (int64_t a = 0; a < A; ++a) {
      const float* h = h1.data() + a * R1;
      float* g = glu.data() + a * I;
      swiglu(h, I, lim, g);
      in2.set(a, g);
    }
#pragma omp for schedule(dynamic)
    for (size_t i = 0; i < items2.size(); ++i) {
      const Item& it = items2[i];
      const int64_t first = start[it.e], n = start[it.e + 1] - first;
      expert_rows(p2b, p2s, bias2, it.e, R2, G2, it.r0, it.r1, in2, assignments.data() + first, n,
                  y.data() + first * R2);
    }
    if (!few) {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < T; ++t) combine(t);
    }
  }
  if (few)
    for (int64_t t = 0; t < T; ++t) combine(t);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mxfp4_linear", &mxfp4_linear, "Fused MXFP4 dequantize + linear (CPU)");
  m.def("moe_experts", &moe_experts, "A whole MoE layer's experts from packed MXFP4 (CPU)",
        py::arg("x"), py::arg("experts"), py::arg("weights"), py::arg("mlp1_blocks"),
        py::arg("mlp1_scales"), py::arg("mlp1_bias"), py::arg("mlp2_blocks"),
        py::arg("mlp2_scales"), py::arg("mlp2_bias"), py::arg("limit"), py::arg("exact"),
        py::arg("residual") = py::none());
  m.def("linear_bf16", &linear_bf16, "bf16 weights x fp32 activations -> fp32 (CPU)",
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("residual") = py::none());
  m.def("attention", &attention, "Grouped-query attention with sinks over cache cells (CPU)");
  m.def("rms_norm", &rms_norm, "RMSNorm of fp32 rows (CPU)");
  m.def("rope_", &rope_, "Half-split RoPE in place on fp32 heads (CPU)");
  m.def("attention_block", &attention_block, "x + attention half of a block, cache updated (CPU)");
  m.def("moe_block", &moe_block, "x + MoE half of a block: norm, router, experts (CPU)");
  m.def("decode_blocks", &decode_blocks, "One new token through every block (CPU)");
  py::class_<AttentionWeights>(m, "AttentionWeights", py::module_local())
      .def(py::init<torch::Tensor, double, torch::Tensor, c10::optional<torch::Tensor>, int64_t,
                    int64_t, int64_t, torch::Tensor, int64_t, torch::Tensor,
                    c10::optional<torch::Tensor>>(),
           py::arg("norm_scale"), py::arg("eps"), py::arg("qkv_weight"), py::arg("qkv_bias"),
           py::arg("heads"), py::arg("kv_heads"), py::arg("head_dim"), py::arg("sinks"),
           py::arg("window"), py::arg("out_weight"), py::arg("out_bias"));
  py::class_<MoeWeights>(m, "MoeWeights", py::module_local())
      .def(py::init<torch::Tensor, double, torch::Tensor, c10::optional<torch::Tensor>, int64_t,
                    torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor,
                    torch::Tensor, double, bool>(),
           py::arg("norm_scale"), py::arg("eps"), py::arg("gate_weight"), py::arg("gate_bias"),
           py::arg("top_k"), py::arg("mlp1_blocks"), py::arg("mlp1_scales"),
           py::arg("mlp1_bias"), py::arg("mlp2_blocks"), py::arg("mlp2_scales"),
           py::arg("mlp2_bias"), py::arg("limit"), py::arg("exact"));
}
