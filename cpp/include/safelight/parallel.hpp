// Splits an index range over a few threads for large, memory-bound kernels.
#pragma once
#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace safelight {

// Number of worker threads used for large arrays (hardware threads, capped).
inline unsigned worker_count() {
    // hardware_concurrency() reads sysfs (~6 us a call): ask once per process
    static const unsigned n = std::max(1u, std::min(std::thread::hardware_concurrency(), 16u));
    return n;
}

// Calls body(begin, end) on disjoint chunks of [0, n). Chunks are aligned to
// `grain` items so vector kernels see whole blocks; small ranges run inline
// because spawning threads costs tens of microseconds.
template <class Body>
void parallel_for(size_t n, size_t min_parallel, size_t grain, Body body) {
    unsigned threads = worker_count();
    if (n < min_parallel || threads == 1) {
        body(size_t(0), n);
        return;
    }
    size_t chunk = (n + threads - 1) / threads;
    chunk = (chunk + grain - 1) / grain * grain;
    std::vector<std::thread> pool;
    size_t begin = chunk;
    for (; begin < n; begin += chunk) {
        size_t end = std::min(n, begin + chunk);
        pool.emplace_back([=] { body(begin, end); });
    }
    body(size_t(0), std::min(n, chunk));
    for (auto& t : pool) t.join();
}

}  // namespace safelight
