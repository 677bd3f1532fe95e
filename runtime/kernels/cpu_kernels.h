// Declarations shared by the CPU kernel sources (one extension module, several files).
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstring>

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace oss_agent {

inline float bf16_to_float(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

// A small parameter (bias, sinks) kept as it is when fp32 or bf16, else converted to fp32;
// contiguous. Converting a bf16 parameter on every call costs an allocation and a copy.
inline torch::Tensor fp32_or_bf16(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  return (type == torch::kFloat || type == torch::kBFloat16 ? t : t.to(torch::kFloat)).contiguous();
}

// The values of a tensor from fp32_or_bf16, read as fp32 in place.
class Floats {
 public:
  explicit Floats(const torch::Tensor& t)
      : data_(t.data_ptr()), bf16_(t.scalar_type() == torch::kBFloat16) {
    TORCH_CHECK(t.is_contiguous() && (bf16_ || t.scalar_type() == torch::kFloat),
                "expected a contiguous fp32 or bf16 tensor, got ", t.scalar_type());
  }

  float operator[](int64_t i) const {
    if (bf16_) return bf16_to_float(static_cast<const uint16_t*>(data_)[i]);
    return static_cast<const float*>(data_)[i];
  }

 private:
  const void* data_;
  bool bf16_;
};

#ifdef __AVX2__
inline float hsum(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hsum(__m256 v) {
  return hsum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

// exp(v) for 8 values v <= 0 (a softmax after its max, a sigmoid's smaller side): 2^k e^r,
// |r| <= ln 2 / 2, e^r by its Taylor series to r^7 (relative error under 1e-8 there, so the
// result is within float rounding of std::exp). Below -87.3 the result would be subnormal
// and is 0.
inline __m256 exp_nonpositive(__m256 v) {
  const __m256 floor = _mm256_set1_ps(-87.3f), log2e = _mm256_set1_ps(1.44269504f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693145752f), ln2_lo = _mm256_set1_ps(1.42860677e-6f);
  const __m256 kept = _mm256_cmp_ps(v, floor, _CMP_GE_OQ);
  v = _mm256_max_ps(v, floor);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(v, log2e),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, ln2_hi, v);
  r = _mm256_fnmadd_ps(k, ln2_lo, r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i power =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(kept, _mm256_mul_ps(p, _mm256_castsi256_ps(power)));
}
#endif

}  // namespace oss_agent

// x @ weight.T + bias, plus `residual` [T, R] when given (the block's skip connection,
// added as each output is written instead of in a pass of its own).
torch::Tensor linear_bf16(const torch::Tensor& x, const torch::Tensor& weight,
                          const c10::optional<torch::Tensor>& bias,
                          const c10::optional<torch::Tensor>& residual = c10::nullopt);

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& keys,
                        const torch::Tensor& values, const torch::Tensor& key_pos,
                        const torch::Tensor& positions, const torch::Tensor& sinks,
                        int64_t window);

torch::Tensor moe_experts(const torch::Tensor& x, const torch::Tensor& experts,
                          const torch::Tensor& weights, const torch::Tensor& mlp1_blocks,
                          const torch::Tensor& mlp1_scales, const torch::Tensor& mlp1_bias,
                          const torch::Tensor& mlp2_blocks, const torch::Tensor& mlp2_scales,
                          const torch::Tensor& mlp2_bias, double limit, bool exact,
                          const c10::optional<torch::Tensor>& residual = c10::nullopt);

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& scale, double eps);

void rope_(torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
           int64_t d);

// One block's attention half: what attention_block needs besides the activations and cache.
struct AttentionWeights {
  torch::Tensor norm_scale;
  double eps;
  torch::Tensor qkv_weight;
  c10::optional<torch::Tensor> qkv_bias;
  int64_t heads, kv_heads, head_dim;
  torch::Tensor sinks;
  int64_t window;  // 0: full context
  torch::Tensor out_weight;
  c10::optional<torch::Tensor> out_bias;
};

// One block's MoE half: norm, fp32 router and the packed experts of all E experts.
struct MoeWeights {
  torch::Tensor norm_scale;
  double eps;
  torch::Tensor gate_weight;
  c10::optional<torch::Tensor> gate_bias;
  int64_t top_k;
  torch::Tensor mlp1_blocks, mlp1_scales, mlp1_bias, mlp2_blocks, mlp2_scales, mlp2_bias;
  double limit;
  bool exact;  // fp32 activations into the experts (else int8 per block of 32)
};

torch::Tensor attention_block(const torch::Tensor& x, const AttentionWeights& w,
                              const torch::Tensor& cos, const torch::Tensor& sin,
                              torch::Tensor& cache_k, torch::Tensor& cache_v,
                              torch::Tensor& cache_pos, bool ring, const torch::Tensor& positions);

torch::Tensor moe_block(const torch::Tensor& x, const MoeWeights& w);

torch::Tensor decode_blocks(torch::Tensor x, const std::vector<AttentionWeights>& attention,
                            const std::vector<MoeWeights>& moe, const torch::Tensor& cos,
                            const torch::Tensor& sin, std::vector<torch::Tensor> caches,
                            const std::vector<bool>& rings, const torch::Tensor& positions);
