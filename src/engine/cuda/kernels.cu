// dbl's CUDA kernels (feature `cuda`), compiled at run time by NVRTC for the
// device's compute capability (src/engine/cuda/kernels.rs). Row-major f32
// throughout; sums that the CPU engine accumulates in f64 are accumulated in
// double here too, in a fixed order per launch configuration, so results are
// deterministic on a given GPU. docs/method.md §5 (the backbones) and §8
// (scoring) describe what each step computes.

#define EPS 1e-8f
#define LEAKY 0.1f
#define MAX_THREADS 256

// Sum of `v` over the block (blockDim.x <= MAX_THREADS, a power of two);
// every thread gets the total. Uses `sh` (MAX_THREADS doubles).
__device__ double block_sum(double v, double* sh) {
    const int t = threadIdx.x;
    __syncthreads();
    sh[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    const double total = sh[0];
    __syncthreads();
    return total;
}

// Row-wise y = L2(y + bias) in place (bias may be null), as
// engine/l2norm.rs: y / (‖y‖ + eps), the sum of squares in double.
// One block per row. y: [rows, dim]; bias: [dim].
extern "C" __global__ void bias_l2norm_rows(float* y, const float* bias, int rows, int dim) {
    __shared__ double sh[MAX_THREADS];
    const long row = blockIdx.x;
    if (row >= rows) return;
    float* p = y + row * (long)dim;
    double acc = 0.0;
    for (int k = threadIdx.x; k < dim; k += blockDim.x) {
        float v = p[k];
        if (bias) v = v + bias[k];
        p[k] = v;
        acc += (double)v * (double)v;
    }
    const float n = (float)sqrt(block_sum(acc, sh));
    const double inv = 1.0 / (double)(n + EPS);
    for (int k = threadIdx.x; k < dim; k += blockDim.x) p[k] = (float)((double)p[k] * inv);
}

// vse max pooling over regions (before the L2 norm). y: [n, R, d] → out: [n, d].
extern "C" __global__ void max_pool_regions(const float* y, float* out, int n, int R, int d) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * d) return;
    const long i = e / d, k = e % d;
    const float* p = y + i * R * (long)d + k;
    float m = p[0];
    for (int r = 1; r < R; ++r) m = fmaxf(m, p[(long)r * d]);
    out[e] = m;
}

// vse mean pooling of raw features over regions (double sum).
// x: [n, R, dim] → out: [n, dim].
extern "C" __global__ void mean_pool_regions(const float* x, float* out, int n, int R, int dim) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * dim) return;
    const long i = e / dim, k = e % dim;
    const float* p = x + i * R * (long)dim + k;
    double acc = 0.0;
    for (int r = 0; r < R; ++r) acc += (double)p[(long)r * dim];
    out[e] = (float)(acc * (1.0 / (double)R));
}

// Embedding lookup in packed token order. table: [V, dim]; ids: [n_tok] → out: [n_tok, dim].
extern "C" __global__ void embed_gather(const float* table, const int* ids, float* out, int n_tok, int dim) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n_tok * dim) return;
    const long t = e / dim, k = e % dim;
    out[e] = table[(long)ids[t] * dim + k];
}

__device__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// One GRU step of one direction over the n rows active at this step
// (engine/gru.rs gate equations; rows b >= n_prev start from h = 0).
// gi: [n, 3H] (X·W_ihᵀ of these tokens); gh: [n_prev, 3H] (h_prev·W_hhᵀ);
// hprev: [n_prev, H]; hcur: [n, H].
extern "C" __global__ void gru_gates(const float* gi, const float* gh, const float* b_ih,
                                     const float* b_hh, const float* hprev, float* hcur,
                                     int n, int n_prev, int H) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * H) return;
    const long b = e / H;
    const int u = (int)(e % H);
    const long g3 = 3L * H;
    const float* x = gi + b * g3;
    float ghr = 0.0f, ghz = 0.0f, ghn = 0.0f, hp = 0.0f;
    if (b < n_prev) {
        const float* y = gh + b * g3;
        ghr = y[u];
        ghz = y[H + u];
        ghn = y[2 * H + u];
        hp = hprev[b * H + u];
    }
    const float r = sigmoidf_((ghr + b_hh[u]) + (x[u] + b_ih[u]));
    const float z = sigmoidf_((ghz + b_hh[H + u]) + (x[H + u] + b_ih[H + u]));
    const float hn = ghn + b_hh[2 * H + u];
    const float nn = tanhf((x[2 * H + u] + b_ih[2 * H + u]) + hn * r);
    hcur[e] = (hp - nn) * z + nn;
}

// Averages the two directions' hidden states of each packed token and writes
// the row to its place in the stacked word list. hf, hb: [n_tok, H];
// dest: [n_tok] (row of `out`); out: [N_w, H].
extern "C" __global__ void gru_avg_scatter(const float* hf, const float* hb, const int* dest,
                                           float* out, int n_tok, int H) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n_tok * H) return;
    const long t = e / H, u = e % H;
    out[(long)dest[t] * H + u] = (hf[e] + hb[e]) / 2.0f;
}

// vse text pooling: mean of each caption's word rows (double sum).
// words: [N_w, d]; off: [n_cap + 1] → out: [n_cap, d].
extern "C" __global__ void mean_pool_captions(const float* words, const int* off, float* out, int n_cap, int d) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n_cap * d) return;
    const long j = e / d, k = e % d;
    const int a = off[j], b = off[j + 1];
    double acc = 0.0;
    for (int w = a; w < b; ++w) acc += (double)words[(long)w * d + k];
    out[e] = (float)(acc / (double)(b - a));
}

// scan head steps 1–3a for one (caption j, image i) of a tile: LeakyReLU of
// A = W·Vᵀ, normalisation over the caption's words per region, softmax over
// regions (model/scan_head.rs). Grid (n_cap, nb).
// att: [nw, nb·R] (row k = word k of the tile); off: the tile's caption
// offsets (off[0] = w0 is the tile's first word) → alpha: [nb, nw, R].
extern "C" __global__ void scan_attend(const float* att, const int* off, int w0, float* alpha,
                                       int nw, int nb, int R, float smooth) {
    extern __shared__ double inv[];  // [R]
    const int j = blockIdx.x, i = blockIdx.y;
    const int a = off[j] - w0, b = off[j + 1] - w0;
    const long lda = (long)nb * R;
    for (int r = threadIdx.x; r < R; r += blockDim.x) {
        double acc = 0.0;
        for (int k = a; k < b; ++k) {
            float x = att[k * lda + (long)i * R + r];
            x = x > 0.0f ? x : x * LEAKY;
            acc += (double)x * (double)x;
        }
        const float n = (float)sqrt(acc);
        inv[r] = 1.0 / (double)(n + EPS);
    }
    __syncthreads();
    for (int k = a + threadIdx.x; k < b; k += blockDim.x) {
        const float* row = att + k * lda + (long)i * R;
        float* out = alpha + ((long)i * nw + k) * R;
        float m = __int_as_float(0xff800000);  // -inf
        for (int r = 0; r < R; ++r) {
            float x = row[r];
            x = x > 0.0f ? x : x * LEAKY;
            const float y = (float)((double)x * inv[r]);
            out[r] = y;
            m = fmaxf(m, y);
        }
        m = m * smooth;
        double sum = 0.0;
        for (int r = 0; r < R; ++r) {
            const float y = expf(out[r] * smooth - m);
            out[r] = y;
            sum += (double)y;
        }
        const float q = (float)(1.0 / sum);
        for (int r = 0; r < R; ++r) out[r] = out[r] * q;
    }
}

// scan head step 3b–4a: C = L2(C) then D = (C − W)², in place, one block per
// row of the [nb, nw, d] context. words: the tile's [nw, d].
extern "C" __global__ void scan_context_square(float* c, const float* words, int nw, int nb, int d) {
    __shared__ double sh[MAX_THREADS];
    const long row = blockIdx.x;
    if (row >= (long)nb * nw) return;
    float* p = c + row * d;
    const float* w = words + (row % nw) * d;
    double acc = 0.0;
    for (int k = threadIdx.x; k < d; k += blockDim.x) {
        const float v = p[k];
        acc += (double)v * (double)v;
    }
    const float n = (float)sqrt(block_sum(acc, sh));
    const double inv = 1.0 / (double)(n + EPS);
    for (int k = threadIdx.x; k < d; k += blockDim.x) {
        const float cv = (float)((double)p[k] * inv);
        const float df = cv - w[k];
        p[k] = df * df;
    }
}

// scan head step 5 for one (caption j, image i): h = L2(mean of the caption's
// normalised H rows); s = tanh(w_e·h + b_e). t: [nb, nw, S];
// out: scores [.., ldo], written at (img0 + i, cap0 + j). Grid (n_cap, nb);
// blockDim.x >= S is not required. Shared: S floats after the reduction space.
extern "C" __global__ void scan_pool_score(const float* t, const int* off, int w0, int nw, int S,
                                           const float* we, float be, float* out, long ldo,
                                           int img0, int cap0) {
    __shared__ double sh[MAX_THREADS];
    extern __shared__ float h[];  // [S]
    const int j = blockIdx.x, i = blockIdx.y;
    const int a = off[j] - w0, b = off[j + 1] - w0;
    const double invlen = 1.0 / (double)(b - a);
    double sq = 0.0;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        double acc = 0.0;
        for (int k = a; k < b; ++k) acc += (double)t[((long)i * nw + k) * S + s];
        const float v = (float)(acc * invlen);
        h[s] = v;
        sq += (double)v * (double)v;
    }
    const float n = (float)sqrt(block_sum(sq, sh));
    const double inv = 1.0 / (double)(n + EPS);
    double dot = 0.0;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        const float v = (float)((double)h[s] * inv);
        dot += (double)v * (double)we[s];
    }
    const double z = block_sum(dot, sh);
    if (threadIdx.x == 0) out[(long)(img0 + i) * ldo + cap0 + j] = tanhf((float)z + be);
}
