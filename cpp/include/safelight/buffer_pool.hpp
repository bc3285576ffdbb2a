// Reusable 64-byte-aligned scratch buffers for engines whose calls need large
// temporary arrays (GEMM packing panels, garbling wire tables): allocating them
// afresh on every call would pay first-touch page faults each time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#include "safelight/secure_wipe.hpp"

namespace safelight {

// A small thread-safe free list of uint64 buffers, best fit, bounded in count and bytes.
class BufferPool {
public:
    BufferPool(size_t max_idle, size_t max_idle_bytes)
        : max_idle_(max_idle), max_idle_bytes_(max_idle_bytes) {}

    uint64_t* acquire(size_t elems, size_t& capacity) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            size_t best = idle_.size();
            for (size_t i = 0; i < idle_.size(); ++i)
                if (idle_[i].elems >= elems &&
                    (best == idle_.size() || idle_[i].elems < idle_[best].elems))
                    best = i;
            if (best != idle_.size()) {
                const Buffer b = idle_[best];
                idle_.erase(idle_.begin() + ptrdiff_t(best));
                idle_bytes_ -= b.elems * sizeof(uint64_t);
                capacity = b.elems;
                return b.data;
            }
        }
        capacity = elems;
        return static_cast<uint64_t*>(::operator new[](elems * sizeof(uint64_t), std::align_val_t(64)));
    }

    void release(uint64_t* data, size_t elems) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            const size_t bytes = elems * sizeof(uint64_t);
            if (idle_.size() < max_idle_ && idle_bytes_ + bytes <= max_idle_bytes_) {
                idle_.push_back({data, elems});
                idle_bytes_ += bytes;
                return;
            }
        }
        ::operator delete[](data, std::align_val_t(64));
    }

private:
    struct Buffer {
        uint64_t* data;
        size_t elems;
    };
    const size_t max_idle_, max_idle_bytes_;
    std::mutex mu_;
    std::vector<Buffer> idle_;
    size_t idle_bytes_ = 0;
};

// A buffer borrowed from a pool for one scope. With `wipe`, the used part is
// zeroed before it goes back (it held secret material, e.g. wire labels).
class PooledBuffer {
public:
    PooledBuffer(BufferPool& pool, size_t elems, bool wipe = false)
        : pool_(&pool), used_(elems), wipe_(wipe) {
        if (elems) data_ = pool.acquire(elems, capacity_);
    }
    ~PooledBuffer() {
        if (!data_) return;
        if (wipe_) secure_wipe(data_, used_ * sizeof(uint64_t));
        pool_->release(data_, capacity_);
    }
    PooledBuffer(PooledBuffer&& o) noexcept
        : pool_(o.pool_), data_(o.data_), used_(o.used_), capacity_(o.capacity_), wipe_(o.wipe_) {
        o.data_ = nullptr;
    }
    PooledBuffer(const PooledBuffer&) = delete;
    PooledBuffer& operator=(const PooledBuffer&) = delete;
    PooledBuffer& operator=(PooledBuffer&&) = delete;
    uint64_t* get() const { return data_; }

private:
    BufferPool* pool_;
    uint64_t* data_ = nullptr;
    size_t used_ = 0, capacity_ = 0;
    bool wipe_ = false;
};

}  // namespace safelight
