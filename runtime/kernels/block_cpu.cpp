// A transformer block's two halves as one call each, and a decode step's blocks as one call,
// for CPU inference with fp32 activations.
//
// Between the big kernels a block runs a dozen small operations (norm, router, top-k, cache
// stores, residual adds). Each weight matrix streamed through pushes everything else out of
// the caches, so each small operation then runs cold: as Python calls or ATen ops they cost
// ~20-150 us each on gpt-oss-20b while the other threads wait. Here they are plain loops.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "cpu_kernels.h"

namespace {

// x @ weight.T + bias (+ residual) in fp32 for fp32 x: bf16 weights through linear_bf16,
// others widened.
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& weight,
                      const c10::optional<torch::Tensor>& bias,
                      const c10::optional<torch::Tensor>& residual = c10::nullopt) {
  if (weight.scalar_type() == torch::kBFloat16) return linear_bf16(x, weight, bias, residual);
  torch::Tensor y = weight.scalar_type() == torch::kFloat
                        ? at::linear(x, weight, bias)
                        : at::linear(x.to(weight.scalar_type()), weight, bias).to(torch::kFloat);
  return residual.has_value() ? y + *residual : y;
}

// Each row's n floats written to the cache in its dtype (bf16: rounded to nearest even, as
// Tensor.to rounds).
template <typename KV>
void store_row(const float* from, int64_t n, KV* to) {
  for (int64_t i = 0; i < n; ++i) to[i] = KV(from[i]);
}

// The new keys and values of rows qkv [T, (H + 2 KV) d] stored with their positions at their
// slots (position, or position % slots in a ring); returns the largest new position. Plain
// stores: as ATen ops (remainder, casts, three index_copy_) each call ran code the streamed
// weights had pushed out of every cache, ~0.1 ms per block on gpt-oss-20b.
int64_t store_new(const torch::Tensor& qkv, int64_t heads, int64_t kv_heads, int64_t d,
                  const torch::Tensor& positions, torch::Tensor& cache_k, torch::Tensor& cache_v,
                  torch::Tensor& cache_pos, bool ring) {
  const auto type = cache_k.scalar_type();
  TORCH_CHECK((type == torch::kFloat || type == torch::kBFloat16) &&
                  cache_v.scalar_type() == type && cache_k.is_contiguous() &&
                  cache_v.is_contiguous() && cache_pos.is_contiguous() &&
                  cache_pos.scalar_type() == torch::kLong &&
                  positions.scalar_type() == torch::kLong && positions.is_contiguous(),
              "attention_block: expected contiguous fp32 or bf16 caches and int64 positions");
  const int64_t T = qkv.size(0), slots = cache_k.size(0), row = kv_heads * d;
  TORCH_CHECK(cache_k.numel() == slots * row && cache_v.numel() == slots * row &&
                  cache_pos.numel() == slots,
              "attention_block: the cache is not [slots, kv_heads, head_dim]");
  const int64_t* pos = positions.data_ptr<int64_t>();
  int64_t newest = -1;
  for (int64_t t = 0; t < T; ++t) {
    TORCH_CHECK(pos[t] >= 0 && (ring || pos[t] < slots), "attention_block: position ", pos[t],
                " does not fit a cache of ", slots, " slots");
    const int64_t slot = ring ? pos[t] % slots : pos[t];
    const float* k = qkv.data_ptr<float>() + t * qkv.stride(0) + heads * d;
    const float* v = k + row;
    if (type == torch::kBFloat16) {
      store_row(k, row, cache_k.data_ptr<at::BFloat16>() + slot * row);
      store_row(v, row, cache_v.data_ptr<at::BFloat16>() + slot * row);
    } else {
      store_row(k, row, cache_k.data_ptr<float>() + slot * row);
      store_row(v, row, cache_v.data_ptr<float>() + slot * row);
    }
    cache_pos.data_ptr<int64_t>()[slot] = pos[t];
    newest = std::max(newest, pos[t]);
  }
  return newest;
}

// The router's fp32 logits [T, E] = t @ weight.T + bias, rows split over the threads.
torch::Tensor route(const torch::Tensor& t, const torch::Tensor& weight,
                    const c10::optional<torch::Tensor>& bias) {
  TORCH_CHECK(weight.scalar_type() == torch::kFloat && weight.is_contiguous() &&
                  (!bias.has_value() || bias->scalar_type() == torch::kFloat),
              "moe_block: the router runs in fp32: expected fp32 weight and bias");
  const int64_t T = t.size(0), H = t.size(1), E = weight.size(0);
  TORCH_CHECK(weight.size(1) == H, "moe_block: router weight is not [experts, hidden]");
  torch::Tensor logits = torch::empty({T, E}, t.options());
  const float* tp = t.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  const float* bp = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  float* lp = logits.data_ptr<float>();
#pragma omp parallel for num_threads(at::get_num_threads()) if (T * E * H >= (1 << 16))
  for (int64_t i = 0; i < T * E; ++i) {
    const float* a = tp + i / E * H;
    const float* w = wp + i % E * H;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < H; ++c) sum += a[c] * w[c];
    lp[i] = sum + (bp ? bp[i % E] : 0.0f);
  }
  return logits;
}

// Each row's k largest logits (largest first; ties: lower expert first; NaN counts as the
// largest, as in torch.topk) and the softmax over them: experts int64 [T, k], weights fp32
// [T, k].
std::pair<torch::Tensor, torch::Tensor> top_experts(const torch::Tensor& logits, int64_t k) {
  const int64_t T = logits.size(0), E = logits.size(1);
  TORCH_CHECK(k >= 1 && k <= E, "moe_block: top_k ", k, " is not within 1..", E);
  torch::Tensor experts = torch::empty({T, k}, logits.options().dtype(torch::kLong));
  torch::Tensor weights = torch::empty({T, k}, logits.options());
  std::vector<int64_t> order(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits.data_ptr<float>() + t * E;
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    auto rank = [&](int64_t e) { return std::isnan(l[e]) ? INFINITY : l[e]; };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return rank(a) > rank(b) || (rank(a) == rank(b) && a < b);
    });
    int64_t* chosen = experts.data_ptr<int64_t>() + t * k;
    float* w = weights.data_ptr<float>() + t * k;
    float total = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      chosen[j] = order[j];
      w[j] = std::exp(l[order[j]] - l[order[0]]);
      total += w[j];
    }
    for (int64_t j = 0; j < k; ++j) w[j] /= total;
  }
  return {experts, weights};
}

}  // namespace

// x + out(attention(rope(qkv(norm(x))))) for rows of x [T, hidden] at `positions` [T]: the
// new keys and values are stored in the cache first (slot = position, or position % slots
// in a ring), then every query attends over the cache in place. Storing first is right for
// one new token per ring and any number in a full cache; the caller handles the rest.
torch::Tensor attention_block(const torch::Tensor& x, const AttentionWeights& w,
                              const torch::Tensor& cos, const torch::Tensor& sin,
                              torch::Tensor& cache_k, torch::Tensor& cache_v,
                              torch::Tensor& cache_pos, bool ring, const torch::Tensor& positions) {
  const int64_t T = x.size(0), d = w.head_dim, heads = w.heads, kv_heads = w.kv_heads;
  TORCH_CHECK(!ring || T <= cache_k.size(0),
              "attention_block: more new tokens than ring slots");
  torch::Tensor qkv = project(rms_norm(x, w.norm_scale, w.eps), w.qkv_weight, w.qkv_bias);
  rope_(qkv, cos, sin, heads + kv_heads, d);
  const int64_t newest =
      store_new(qkv, heads, kv_heads, d, positions, cache_k, cache_v, cache_pos, ring);
  const torch::Tensor q = qkv.narrow(1, 0, heads * d).view({T, heads, d});
  torch::Tensor keys = cache_k, values = cache_v, key_pos = cache_pos;
  if (!ring) {  // slots are positions: only the prefix up to the newest one is in use
    keys = keys.narrow(0, 0, newest + 1);
    values = values.narrow(0, 0, newest + 1);
    key_pos = key_pos.narrow(0, 0, newest + 1);
  }
  const torch::Tensor mixed = attention(q, keys, values, key_pos, positions, w.sinks, w.window);
  return project(mixed, w.out_weight, w.out_bias, x);
}

// x + the MoE of norm(x): fp32 router, the top k experts per token weighted by the softmax
// of their logits, then moe_experts. The router, top-k and softmax are plain loops for the
// same reason as the cache stores above.
torch::Tensor moe_block(const torch::Tensor& x, const MoeWeights& w) {
  const torch::Tensor t = rms_norm(x, w.norm_scale, w.eps);
  const auto [experts, weights] = top_experts(route(t, w.gate_weight, w.gate_bias), w.top_k);
  return moe_experts(t, experts, weights, w.mlp1_blocks, w.mlp1_scales, w.mlp1_bias,
                     w.mlp2_blocks, w.mlp2_scales, w.mlp2_bias, w.limit, w.exact, x);
}

// One new token through every block: x [1, hidden] at `positions` [1], with the k, v and
// pos tensors of each block's cache in `caches` (three per block). Between the halves of a
// decode step there is nothing for Python to decide; crossing into C++ once per token instead
// of twice per block saved ~0.3 ms per block on gpt-oss-20b (the interpreter's objects are
// cold in cache after each block's weights have streamed through).
torch::Tensor decode_blocks(torch::Tensor x, const std::vector<AttentionWeights>& attention,
                            const std::vector<MoeWeights>& moe, const torch::Tensor& cos,
                            const torch::Tensor& sin, std::vector<torch::Tensor> caches,
                            const std::vector<bool>& rings, const torch::Tensor& positions) {
  const size_t blocks = attention.size();
  TORCH_CHECK(moe.size() == blocks && rings.size() == blocks && caches.size() == 3 * blocks,
              "decode_blocks: expected one attention half, MoE half, ring flag and three cache "
              "tensors per block");
  TORCH_CHECK(x.size(0) == 1 && positions.numel() == 1, "decode_blocks: one token at a time");
  for (size_t n = 0; n < blocks; ++n) {
    x = attention_block(x, attention[n], cos, sin, caches[3 * n], caches[3 * n + 1],
                        caches[3 * n + 2], rings[n], positions);
    x = moe_block(x, moe[n]);
  }
  return x;
}
