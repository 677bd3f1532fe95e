// RMSNorm and RoPE on fp32 activations for CPU decode: each is half a dozen eager PyTorch ops
// on a few thousand floats, where dispatch costs more than the arithmetic.
#include <cmath>

#include "cpu_kernels.h"

// y = scale * x / sqrt(mean(x^2) + eps) per row of x [T, C], all fp32.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& scale, double eps) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat &&
                  scale.scalar_type() == torch::kFloat && scale.numel() == x.size(1),
              "rms_norm: expected fp32 x [T, C] and scale [C]");
  const torch::Tensor xc = x.contiguous(), sc = scale.contiguous();
  const int64_t T = xc.size(0), C = xc.size(1);
  torch::Tensor y = torch::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  const float* sp = sc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    const float* row = xp + t * C;
    float squares = 0.0f;
    for (int64_t c = 0; c < C; ++c) squares += row[c] * row[c];
    const float inv = 1.0f / std::sqrt(squares / float(C) + float(eps));
    for (int64_t c = 0; c < C; ++c) yp[t * C + c] = sp[c] * (row[c] * inv);
  }
  return y;
}

// Half-split RoPE in place on the first `heads` heads of each row of x [T, n * d] (fp32):
// (a, b) -> (a cos - b sin, b cos + a sin) with cos/sin [T, d/2] for the row's position.
void rope_(torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
           int64_t d) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.stride(1) == 1 &&
                  x.size(1) >= heads * d && d % 2 == 0,
              "rope_: expected fp32 x [T, n * d] with unit column stride");
  const torch::Tensor c = cos.to(torch::kFloat).contiguous();
  const torch::Tensor s = sin.to(torch::kFloat).contiguous();
  const int64_t T = x.size(0), half = d / 2;
  TORCH_CHECK(c.numel() == T * half && s.numel() == T * half, "rope_: cos/sin are not [T, d/2]");
  float* xp = x.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    const float* ct = c.data_ptr<float>() + t * half;
    const float* st = s.data_ptr<float>() + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* a = xp + t * x.stride(0) + h * d;
      float* b = a + half;
      for (int64_t i = 0; i < half; ++i) {
        const float ai = a[i], bi = b[i];
        a[i] = ai * ct[i] - bi * st[i];
        b[i] = bi * ct[i] + ai * st[i];
      }
    }
  }
}
