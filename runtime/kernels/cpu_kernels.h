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

#ifdef __AVX2__
inline float hsum(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hsum(__m256 v) {
  return hsum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
#endif

}  // namespace oss_agent

torch::Tensor linear_bf16(const torch::Tensor& x, const torch::Tensor& weight,
                          const c10::optional<torch::Tensor>& bias);

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& keys,
                        const torch::Tensor& values, const torch::Tensor& key_pos,
                        const torch::Tensor& positions, const torch::Tensor& sinks,
                        int64_t window);

torch::Tensor moe_experts(const torch::Tensor& x, const torch::Tensor& experts,
                          const torch::Tensor& weights, const torch::Tensor& mlp1_blocks,
                          const torch::Tensor& mlp1_scales, const torch::Tensor& mlp1_bias,
                          const torch::Tensor& mlp2_blocks, const torch::Tensor& mlp2_scales,
                          const torch::Tensor& mlp2_bias, double limit, bool exact);

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& scale, double eps);

void rope_(torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
           int64_t d);
