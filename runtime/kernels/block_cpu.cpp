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
torch::Tensor attention_block(const torch::Tensor& x, const AttentionWeights& w,
                              const torch::Tensor& cos, const torch::Tensor& sin,
                              torch::Tensor& cache_k, torch::Tensor& cache_v,
                              torch::Tensor& cache_pos, bool ring, const torch::Tensor& positions) {
  const int64_t T = x.size(0), d = w.head_dim, heads = w.heads, kv_heads = w.kv_heads;
  TORCH_CHECK(!ring || T <= cache_k.size(0),
              "attention_block: more new tokens than ring slots");
  torch::Tensor qkv = project(rms_norm(x, w.norm_scale, w.eps), w.qkv_weight, w.qkv_bias);
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
  const torch::Tensor mixed = attention(q, keys, values, key_pos, positions, w.sinks, w.window);
  return x + project(mixed, w.out_weight, w.out_bias);
}

// x + the MoE of norm(x): fp32 router, the top k experts per token weighted by the softmax
// of their logits, then moe_experts.
torch::Tensor moe_block(const torch::Tensor& x, const MoeWeights& w) {
  const torch::Tensor t = rms_norm(x, w.norm_scale, w.eps);
  const torch::Tensor router = at::linear(t, w.gate_weight, w.gate_bias);
  const auto [top, experts] = at::topk(router, w.top_k, -1, true, true);
  const torch::Tensor weights = at::softmax(top, -1);
  return x + moe_experts(t, experts, weights, w.mlp1_blocks, w.mlp1_scales, w.mlp1_bias,
                         w.mlp2_blocks, w.mlp2_scales, w.mlp2_bias, w.limit, w.exact);
}

// One new token through every block: x [1, hidden] at `positions` [1], with the k, v and
// pos tensors of each block's cache in `caches` (three per block). Between the halves of a
// decode step there is nothing for Python to decide; crossing into C++ once per token instead
// of twice per block saves ~0.2 ms per block on gpt-oss-20b (the interpreter's objects are
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
