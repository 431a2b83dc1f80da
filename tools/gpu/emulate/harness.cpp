// Host check of the scan-ave head kernels and the GRU gate kernel of
// src/engine/cuda/kernels.cu, run through shim.h (no GPU): two caption tiles (the
// second starting at word w0 > 0) x two images, with the GEMMs between kernels done
// naively as src/model/cuda/scan.rs lays them out, against the head formulas of
// model/scan_head.rs in double. Exit 0 when every score is within 1e-5. tools/gpu/emulate/run.sh.
#include "shim.h"
#include "kernels_host.inc"  // kernels.cu with extern __shared__ rewritten (run.sh)
#include <cstdio>
#include <random>
static std::mt19937 rng(1);
static std::vector<float> rnd(size_t n) { std::normal_distribution<float> d(0, 1); std::vector<float> v(n); for (auto& x : v) x = d(rng); return v; }
static void l2(std::vector<double>& v) { double s = 0; for (double x : v) s += x * x; double n = std::sqrt(s) + 1e-8; for (double& x : v) x /= n; }

int main() {
  const int d = 8, S = 4, R = 3, nb = 2;
  std::vector<int> offs = {0, 2, 5, 6, 10};  // 4 captions
  const int n_cap_all = 4, nw_all = offs.back();
  auto W = rnd(nw_all * d), V = rnd(nb * R * d), Wt = rnd(S * d), bt = rnd(S), we = rnd(S);
  float be = 0.3f, smooth = 9.0f;
  std::vector<float> out(nb * n_cap_all, -99.f);
  // Two tiles: captions [0,2) and [2,4).
  for (auto [c0, c1] : {std::pair{0, 2}, std::pair{2, 4}}) {
    int w0 = offs[c0], nw = offs[c1] - w0, nc = c1 - c0;
    const float* Wt_ = W.data() + (size_t)w0 * d;
    std::vector<float> att(nw * nb * R), alpha(nb * nw * R, -1), C(nb * nw * d), T(nb * nw * S);
    for (int k = 0; k < nw; ++k) for (int c = 0; c < nb * R; ++c) { float s = 0; for (int e = 0; e < d; ++e) s += Wt_[k * d + e] * V[c * d + e]; att[k * nb * R + c] = s; }
    std::memset(g_dyn_smem, 0, sizeof g_dyn_smem);
    launch(Dim3{(unsigned)nc, (unsigned)nb, 1}, 64, [&] { scan_attend(att.data(), offs.data() + c0, w0, alpha.data(), nw, nb, R, smooth); });
    for (int i = 0; i < nb; ++i) for (int k = 0; k < nw; ++k) for (int e = 0; e < d; ++e) { float s = 0; for (int r = 0; r < R; ++r) s += alpha[(i * nw + k) * R + r] * V[(i * R + r) * d + e]; C[(i * nw + k) * d + e] = s; }
    launch(Dim3{(unsigned)(nb * nw), 1, 1}, 256, [&] { scan_context_square(C.data(), Wt_, nw, nb, d); });
    for (int q = 0; q < nb * nw; ++q) for (int s = 0; s < S; ++s) { float a = 0; for (int e = 0; e < d; ++e) a += C[q * d + e] * Wt[s * d + e]; T[q * S + s] = a; }
    launch(Dim3{(unsigned)(nb * nw), 1, 1}, 256, [&] { bias_l2norm_rows(T.data(), bt.data(), nb * nw, S); });
    launch(Dim3{(unsigned)nc, (unsigned)nb, 1}, 256, [&] { scan_pool_score(T.data(), offs.data() + c0, w0, nw, S, we.data(), be, out.data(), n_cap_all, 0, c0); });
  }
  // Reference in double, per (image, caption), the formulas of model/scan_head.rs.
  double worst = 0;
  for (int i = 0; i < nb; ++i) for (int j = 0; j < n_cap_all; ++j) {
    int a = offs[j], b = offs[j + 1], L = b - a;
    std::vector<double> P(L * R);
    for (int k = 0; k < L; ++k) for (int r = 0; r < R; ++r) { double s = 0; for (int e = 0; e < d; ++e) s += (double)W[(a + k) * d + e] * V[(i * R + r) * d + e]; P[k * R + r] = s > 0 ? s : 0.1 * s; }
    for (int r = 0; r < R; ++r) { double s = 0; for (int k = 0; k < L; ++k) s += P[k * R + r] * P[k * R + r]; double n = std::sqrt(s) + 1e-8; for (int k = 0; k < L; ++k) P[k * R + r] /= n; }
    std::vector<double> h(S, 0.0);
    for (int k = 0; k < L; ++k) {
      double m = -1e300; for (int r = 0; r < R; ++r) m = std::max(m, P[k * R + r]);
      std::vector<double> al(R); double z = 0; for (int r = 0; r < R; ++r) { al[r] = std::exp(smooth * (P[k * R + r] - m)); z += al[r]; }
      std::vector<double> c(d, 0.0); for (int r = 0; r < R; ++r) for (int e = 0; e < d; ++e) c[e] += al[r] / z * V[(i * R + r) * d + e];
      l2(c);
      std::vector<double> t(S); for (int s = 0; s < S; ++s) { double acc = bt[s]; for (int e = 0; e < d; ++e) { double df = c[e] - W[(a + k) * d + e]; acc += df * df * Wt[s * d + e]; } t[s] = acc; }
      l2(t); for (int s = 0; s < S; ++s) h[s] += t[s] / L;
    }
    l2(h); double z = be; for (int s = 0; s < S; ++s) z += h[s] * we[s];
    double want = std::tanh(z), got = out[i * n_cap_all + j];
    printf("img %d cap %d: kernel %+.7f reference %+.7f\n", i, j, got, want);
    worst = std::max(worst, std::fabs(got - want));
  }
  // GRU gates: 3 rows, 2 with a predecessor, H = 4.
  const int H = 4, n = 3, np = 2;
  auto gi = rnd(n * 3 * H), gh = rnd(np * 3 * H), bih = rnd(3 * H), bhh = rnd(3 * H), hp = rnd(np * H);
  std::vector<float> hc(n * H, -99.f);
  launch(Dim3{1, 1, 1}, 256, [&] { gru_gates(gi.data(), gh.data(), bih.data(), bhh.data(), hp.data(), hc.data(), n, np, H); });
  auto sg = [](double x) { return 1 / (1 + std::exp(-x)); };
  for (int b = 0; b < n; ++b) for (int u = 0; u < H; ++u) {
    double ghr = b < np ? gh[b * 3 * H + u] : 0, ghz = b < np ? gh[b * 3 * H + H + u] : 0, ghn = b < np ? gh[b * 3 * H + 2 * H + u] : 0, p = b < np ? hp[b * H + u] : 0;
    double r = sg(gi[b * 3 * H + u] + bih[u] + ghr + bhh[u]), zz = sg(gi[b * 3 * H + H + u] + bih[H + u] + ghz + bhh[H + u]);
    double nn = std::tanh(gi[b * 3 * H + 2 * H + u] + bih[2 * H + u] + r * (ghn + bhh[2 * H + u]));
    double want = (1 - zz) * nn + zz * p;
    worst = std::max(worst, std::fabs(hc[b * H + u] - want));
  }
  printf("worst abs error %.3e\n", worst);
  return worst < 1e-5 ? 0 : 1;
}
