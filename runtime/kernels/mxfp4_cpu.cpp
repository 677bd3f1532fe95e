// Fused MXFP4 dequantize-and-multiply for CPU decode. Unpacking a whole expert to bf16 costs
// far more than the matvec it feeds, so this reads the packed 4.25-bit weights once, unpacks
// each block of 32 into registers and applies it to every token.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mxfp4_linear", &mxfp4_linear, "Fused MXFP4 dequantize + linear (CPU)");
}
