// A transformer block's two halves as one call each, for CPU inference with fp32 activations.
//
// Between the big kernels a block runs a dozen small operations (norm, router, top-k,
// splits, cache stores, residual adds). As Python calls each is a dispatch and an interpreter
// round trip while the other threads wait; composed here they are plain C++ calls
// (gpt-oss-20b shapes, 2 threads: decode ~5% faster, measured interleaved in one process).
#include <ATen/ATen.h>

#include "cpu_kernels.h"

namespace {

// x @ weight.T + bias in fp32 for fp32 x: bf16 weights through linear_bf16, others widened.
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& weight,
                      const c10::optional<torch::Tensor>& bias) {
  if (weight.scalar_type() == torch::kBFloat16) return linear_bf16(x, weight, bias);
  if (weight.scalar_type() == torch::kFloat) return at::linear(x, weight, bias);
  return at::linear(x.to(weight.scalar_type()), weight, bias).to(torch::kFloat);
}

}  // namespace

// x + out(attention(rope(qkv(norm(x))))) for rows of x [T, hidden] at `positions` [T]: the
// new keys and values are stored in the cache first (slot = position, or position % slots
// in a ring), then every query attends over the cache in place. Storing first is right for
// one new token per ring and any number in a full cache; the caller handles the rest.
torch::Tensor attention_block(const torch::Tensor& x, const torch::Tensor& norm_scale,
                              double eps, const torch::Tensor& qkv_weight,
                              const c10::optional<torch::Tensor>& qkv_bias,
                              const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
                              int64_t kv_heads, int64_t head_dim, torch::Tensor& cache_k,
                              torch::Tensor& cache_v, torch::Tensor& cache_pos,
                              const torch::Tensor& positions, bool ring,
                              const torch::Tensor& sinks, int64_t window,
                              const torch::Tensor& out_weight,
                              const c10::optional<torch::Tensor>& out_bias) {
  const int64_t T = x.size(0), d = head_dim;
  TORCH_CHECK(!ring || T <= cache_k.size(0),
              "attention_block: more new tokens than ring slots");
  torch::Tensor qkv = project(rms_norm(x, norm_scale, eps), qkv_weight, qkv_bias);
  rope_(qkv, cos, sin, heads + kv_heads, d);
  const torch::Tensor q = qkv.narrow(1, 0, heads * d).view({T, heads, d});
  const torch::Tensor k = qkv.narrow(1, heads * d, kv_heads * d).view({T, kv_heads, d});
  const torch::Tensor v = qkv.narrow(1, (heads + kv_heads) * d, kv_heads * d).view({T, kv_heads, d});
  const torch::Tensor index = ring ? positions.remainder(cache_k.size(0)) : positions;
  cache_k.index_copy_(0, index, k.to(cache_k.scalar_type()));
  cache_v.index_copy_(0, index, v.to(cache_v.scalar_type()));
  cache_pos.index_copy_(0, index, positions);
  torch::Tensor keys = cache_k, values = cache_v, key_pos = cache_pos;
  if (!ring) {  // slots are positions: only the prefix up to the newest one is in use
    const int64_t used = positions.max().item<int64_t>() + 1;
    keys = keys.narrow(0, 0, used);
    values = values.narrow(0, 0, used);
    key_pos = key_pos.narrow(0, 0, used);
  }
  const torch::Tensor mixed = attention(q, keys, values, key_pos, positions, sinks, window);
  return x + project(mixed, out_weight, out_bias);
}

// x + the MoE of norm(x): fp32 router, the top k experts per token weighted by the softmax
// of their logits, then moe_experts.
torch::Tensor moe_block(const torch::Tensor& x, const torch::Tensor& norm_scale, double eps,
                        const torch::Tensor& gate_weight,
                        const c10::optional<torch::Tensor>& gate_bias, int64_t top_k,
                        const torch::Tensor& mlp1_blocks, const torch::Tensor& mlp1_scales,
                        const torch::Tensor& mlp1_bias, const torch::Tensor& mlp2_blocks,
                        const torch::Tensor& mlp2_scales, const torch::Tensor& mlp2_bias,
                        double limit, bool exact) {
  const torch::Tensor t = rms_norm(x, norm_scale, eps);
  const torch::Tensor router = at::linear(t, gate_weight, gate_bias);
  const auto [top, experts] = at::topk(router, top_k, -1, true, true);
  const torch::Tensor weights = at::softmax(top, -1);
  return x + moe_experts(t, experts, weights, mlp1_blocks, mlp1_scales, mlp1_bias, mlp2_blocks,
                         mlp2_scales, mlp2_bias, limit, exact);
}
