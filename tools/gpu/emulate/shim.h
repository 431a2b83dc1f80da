// Host emulation of the CUDA subset kernels.cu uses: each block's threads are real
// threads meeting at a barrier; blocks run one after another (so function-level
// statics stand in for __shared__).
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
using std::sqrt;
struct Dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim, gridDim;
inline std::barrier<>* g_bar;
alignas(16) inline char g_dyn_smem[1 << 16];
#define __global__
#define __device__
#define __shared__ static
#define __syncthreads() g_bar->arrive_and_wait()
inline float __int_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float tanhf(float x) { return std::tanh(x); }
inline float expf(float x) { return std::exp(x); }
inline float fmaxf(float a, float b) { return std::fmax(a, b); }
template <class F>
void launch(Dim3 grid, unsigned threads, F f) {
  gridDim = grid; blockDim = Dim3{threads, 1, 1};
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      std::barrier<> bar(threads); g_bar = &bar;
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < threads; ++t)
        ts.emplace_back([=] { threadIdx = Dim3{t, 0, 0}; blockIdx = Dim3{bx, by, 0}; f(); });
      for (auto& t : ts) t.join();
    }
}
