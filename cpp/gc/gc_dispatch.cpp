// Drivers of the garbled-circuit engine: circuit validation and planning
// (make_plan), then garbling / evaluation of the instances in chunks, one
// pass at a time over the whole chunk, split over worker threads.
//
// Planning folds the free gates away: every wire is kept as a XOR of at most
// kMaxSet stored labels plus an INV flip (Delta on the garbler side), so XOR
// and INV gates cost no pass; the AND kernels load their operands as such
// combinations. What remains are AND passes, a few materialisations of long
// XOR combinations, and passes writing output rows (a 32-bit adder: 31 AND
// passes, 32 output passes and 21 materialisations instead of 154 gate
// passes).
//
// Per chunk of C instances the live stored labels sit in a scratch table
// [slot][C][2] (input labels are read in place from the caller's array,
// output rows written in place), so the working set is n_slots * C * 16
// bytes whatever the batch. The scratch is taken on the calling thread
// before any worker starts (running out of memory is a MemoryError, not an
// exception in a worker) and wiped after use: it holds secret labels.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "safelight/buffer_pool.hpp"
#include "safelight/gc.hpp"
#include "safelight/parallel.hpp"
#include "safelight/secure_wipe.hpp"

namespace safelight::gc {

const uint8_t kFixedKey[16] = {0x24, 0x3F, 0x6A, 0x88, 0x85, 0xA3, 0x08, 0xD3,
                               0x13, 0x19, 0x8A, 0x2E, 0x03, 0x70, 0x73, 0x44};

const RoundKeys& fixed_round_keys() {
    static const RoundKeys rk = [] {
        RoundKeys r;
        scalar::expand_key(kFixedKey, r);
        return r;
    }();
    return rk;
}

const Kernels& kernels(Isa isa) { return pick_for(isa, scalar::table, avx2::table, avx512::table); }

namespace {

constexpr uint32_t kNone = ~uint32_t(0);

// Sources a wire's XOR combination may hold before it is materialised into a
// label of its own (AND operands then load at most this many labels each).
constexpr uint32_t kMaxSet = 4;
static_assert(2 * kMaxSet <= uint32_t(kMaxSources), "a XOR of two sets must fit an operand");

// A wire as flip * Delta ^ XOR of stored values (sorted value ids).
struct Sym {
    uint32_t n = 0;
    bool flip = false;
    uint32_t v[kMaxSources];
};

Sym symdiff(const Sym& a, const Sym& b) {
    Sym r;
    r.flip = a.flip != b.flip;
    uint32_t i = 0, j = 0;
    while (i < a.n || j < b.n) {
        if (j == b.n || (i < a.n && a.v[i] < b.v[j])) {
            r.v[r.n++] = a.v[i++];
        } else if (i == a.n || b.v[j] < a.v[i]) {
            r.v[r.n++] = b.v[j++];
        } else {  // x ^ x = 0
            ++i;
            ++j;
        }
    }
    return r;
}

Sym single(uint32_t v) {
    Sym r;
    r.n = 1;
    r.v[0] = v;
    return r;
}

// Before storage is assigned: ops over value ids.
struct SymOp {
    int32_t op;          // kOpAnd or kOpXor
    Sym a, b;            // operands (b: AND only)
    uint32_t value;      // value written (AND, materialisation), or kNone for an output row
    uint64_t row;        // output row (value == kNone)
    uint64_t and_index;
};

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

std::string gate_str(size_t g) { return "gate " + std::to_string(g); }

void validate(const int32_t* gates, size_t n_gates, size_t n_wires, size_t n_inputs,
              const int32_t* outputs, size_t n_outputs) {
    if (n_inputs > n_wires)
        bad("circuit has " + std::to_string(n_inputs) + " inputs but only " +
            std::to_string(n_wires) + " wires");
    std::vector<uint8_t> defined(n_wires, 0);
    std::fill(defined.begin(), defined.begin() + ptrdiff_t(n_inputs), uint8_t(1));
    auto check_read = [&](int32_t w, size_t g, const char* which) {
        if (w < 0 || size_t(w) >= n_wires)
            bad(gate_str(g) + ": " + which + " wire " + std::to_string(w) + " is out of range [0, " +
                std::to_string(n_wires) + ")");
        if (!defined[size_t(w)])
            bad(gate_str(g) + ": " + which + " wire " + std::to_string(w) +
                " is read before it is written (gates must be in topological order)");
    };
    for (size_t g = 0; g < n_gates; ++g) {
        const int32_t* row = gates + 4 * g;
        const int32_t op = row[0];
        if (op != kOpXor && op != kOpAnd && op != kOpInv)
            bad(gate_str(g) + ": unknown op " + std::to_string(op) +
                " (0 = XOR, 1 = AND, 2 = INV)");
        check_read(row[1], g, "input");
        if (op != kOpInv) check_read(row[2], g, "second input");
        const int32_t out = row[3];
        if (out < 0 || size_t(out) >= n_wires)
            bad(gate_str(g) + ": output wire " + std::to_string(out) + " is out of range [0, " +
                std::to_string(n_wires) + ")");
        if (size_t(out) < n_inputs)
            bad(gate_str(g) + ": output wire " + std::to_string(out) + " is an input wire");
        if (defined[size_t(out)])
            bad(gate_str(g) + ": output wire " + std::to_string(out) + " is written twice");
        defined[size_t(out)] = 1;
    }
    for (size_t j = 0; j < n_outputs; ++j) {
        const int32_t w = outputs[j];
        if (w < 0 || size_t(w) >= n_wires)
            bad("output " + std::to_string(j) + ": wire " + std::to_string(w) +
                " is out of range [0, " + std::to_string(n_wires) + ")");
        if (!defined[size_t(w)])
            bad("output " + std::to_string(j) + ": wire " + std::to_string(w) + " is never written");
    }
}

}  // namespace

Plan make_plan(const int32_t* gates, size_t n_gates, size_t n_wires, size_t n_inputs,
               const int32_t* outputs, size_t n_outputs) {
    validate(gates, n_gates, n_wires, n_inputs, outputs, n_outputs);
    Plan plan;
    plan.n_inputs = n_inputs;
    plan.n_wires = n_wires;
    plan.n_outputs = n_outputs;

    // 1. Fold XOR and INV gates: every wire becomes flip * Delta ^ XOR of at
    //    most kMaxSet values (inputs, AND results, materialised XORs). AND
    //    gates and output rows become ops; a XOR whose combination grows past
    //    kMaxSet is materialised by an op of its own.
    std::vector<Sym> sym(n_wires);
    for (size_t w = 0; w < n_inputs; ++w) sym[w] = single(uint32_t(w));
    std::vector<uint64_t> first_row(n_wires, ~uint64_t(0)), next_row(n_outputs, ~uint64_t(0));
    for (size_t j = n_outputs; j-- > 0;) {
        next_row[j] = first_row[size_t(outputs[j])];
        first_row[size_t(outputs[j])] = j;
    }
    uint32_t n_values = uint32_t(n_inputs);
    std::vector<uint64_t> value_row(n_inputs, ~uint64_t(0));  // output row holding a value
    std::vector<SymOp> ops;
    ops.reserve(n_gates);
    auto new_value = [&] {
        value_row.push_back(~uint64_t(0));
        return n_values++;
    };
    // Output rows of wire w: the first row whose combination is a single
    // computed value without flip holds that value directly; other rows are
    // written by an op.
    auto emit_outputs = [&](size_t w) {
        for (uint64_t j = first_row[w]; j != ~uint64_t(0); j = next_row[j]) {
            const Sym& x = sym[w];
            if (x.n == 1 && !x.flip && x.v[0] >= n_inputs && value_row[x.v[0]] == ~uint64_t(0)) {
                value_row[x.v[0]] = j;
                continue;
            }
            ops.push_back({kOpXor, x, Sym(), kNone, j, 0});
        }
    };
    for (size_t w = 0; w < n_inputs; ++w) emit_outputs(w);
    for (size_t g = 0; g < n_gates; ++g) {
        const int32_t* row = gates + 4 * g;
        const size_t out = size_t(row[3]);
        const Sym& a = sym[size_t(row[1])];
        if (row[0] == kOpXor) {
            Sym r = symdiff(a, sym[size_t(row[2])]);
            if (r.n > kMaxSet) {
                const bool flip = r.flip;
                r.flip = false;
                const uint32_t v = new_value();
                ops.push_back({kOpXor, r, Sym(), v, 0, 0});
                r = single(v);
                r.flip = flip;
            }
            sym[out] = r;
        } else if (row[0] == kOpInv) {
            Sym r = a;
            r.flip = !r.flip;
            sym[out] = r;
        } else {
            const uint32_t v = new_value();
            ops.push_back({kOpAnd, a, sym[size_t(row[2])], v, 0, plan.n_and++});
            sym[out] = single(v);
        }
        emit_outputs(out);
    }
    std::vector<Sym>().swap(sym);

    // 2. Liveness, backwards: AND ops (their tables) and output rows always
    //    run; a materialisation runs only if a running op reads it. The first
    //    read met backwards is a value's last use.
    std::vector<uint8_t> live(ops.size(), 0);
    std::vector<size_t> last_use(n_values, ~size_t(0));
    for (size_t i = ops.size(); i-- > 0;) {
        const SymOp& op = ops[i];
        if (op.op == kOpXor && op.value != kNone && last_use[op.value] == ~size_t(0) &&
            value_row[op.value] == ~uint64_t(0))
            continue;  // materialised value nobody reads
        live[i] = 1;
        for (uint32_t s = 0; s < op.a.n; ++s)
            if (last_use[op.a.v[s]] == ~size_t(0)) last_use[op.a.v[s]] = i;
        for (uint32_t s = 0; s < op.b.n; ++s)
            if (last_use[op.b.v[s]] == ~size_t(0)) last_use[op.b.v[s]] = i;
    }

    // 3. Storage, forwards: inputs in place, values shown as output rows in
    //    their row, others in scratch slots. An op's slot is taken before
    //    the slots of values dying at this op are returned, so no op writes
    //    over its own sources.
    std::vector<uint64_t> ref(n_values, 0);
    for (size_t w = 0; w < n_inputs; ++w) ref[w] = w;
    std::vector<uint64_t> free_slots;
    std::vector<uint8_t> input_seen(n_inputs, 0);
    size_t n_slots = 0;
    const auto release = [&](uint32_t v, size_t i) {
        if (v >= n_inputs && value_row[v] == ~uint64_t(0) && last_use[v] == i) {
            free_slots.push_back(ref[v]);
            last_use[v] = ~size_t(0) - 1;  // once, even when read twice by this op
        }
    };
    const auto operand = [&](const Sym& x) {
        PlanOperand o;
        o.n = x.n;
        o.flip = x.flip;
        for (uint32_t s = 0; s < x.n; ++s) {
            o.ref[s] = ref[x.v[s]];
            if (x.v[s] < n_inputs && !input_seen[x.v[s]]) {
                input_seen[x.v[s]] = 1;
                plan.input_rows.push_back(x.v[s]);
            }
        }
        return o;
    };
    plan.ops.reserve(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
        if (!live[i]) continue;
        const SymOp& op = ops[i];
        PlanOp p;
        p.op = op.op;
        p.a = operand(op.a);
        p.b = op.op == kOpAnd ? operand(op.b) : PlanOperand();
        p.and_index = op.and_index;
        if (op.value == kNone) {
            p.out = kOutputRef | op.row;
        } else if (value_row[op.value] != ~uint64_t(0)) {
            p.out = kOutputRef | value_row[op.value];
        } else if (!free_slots.empty()) {
            p.out = free_slots.back();
            free_slots.pop_back();
        } else {
            p.out = n_inputs + n_slots++;
        }
        if (op.value != kNone) ref[op.value] = p.out;
        // An output row no later op reads can bypass the caches.
        p.stream_out = (p.out & kOutputRef) &&
                       (op.value == kNone || last_use[op.value] == ~size_t(0));
        plan.ops.push_back(p);
        for (uint32_t s = 0; s < op.a.n; ++s) release(op.a.v[s], i);
        for (uint32_t s = 0; s < op.b.n; ++s) release(op.b.v[s], i);
        if (op.value != kNone && last_use[op.value] == ~size_t(0) &&
            value_row[op.value] == ~uint64_t(0)) {
            free_slots.push_back(p.out);  // AND result nobody reads (its table still counts)
            last_use[op.value] = ~size_t(0) - 1;
        }
    }
    plan.n_slots = n_slots;
    return plan;
}

namespace {

// Instances per chunk: 256 keeps each pass's rows in L1/L2 (4 KiB per label
// row) while a pass still hashes 1024 (garbler) or 512 (evaluator) blocks;
// measured best on Zen 4 among 128..2048. Fewer when the live labels would
// pass the scratch budget.
constexpr size_t kScratchBudget = size_t(512) << 10;
#ifndef SL_GC_MAX_CHUNK
#define SL_GC_MAX_CHUNK 256
#endif
constexpr size_t kMaxChunk = SL_GC_MAX_CHUNK;
constexpr size_t kMinChunk = 16;
// Below this many (instance x gate) steps a call stays on the calling thread.
constexpr size_t kMinParallelWork = size_t(1) << 15;

struct Job {
    const Plan* plan;
    const Kernels* k;
    const RoundKeys* rk;
    const uint64_t* in;  // [n_inputs][batch][2]
    size_t batch;
    const uint64_t* delta;  // garbler only
    uint64_t offset;
    uint64_t* tables_w;        // garbler
    const uint64_t* tables_r;  // evaluator
    uint64_t* out;             // [n_outputs][batch][2]
    size_t chunk;
};

// Software prefetch (into L2) of the next chunk's memory streams, spread
// evenly over the passes of the current chunk: the input rows it reads and,
// for the evaluator, its table rows (the garbler streams its tables out with
// non-temporal stores). Each row of a chunk is a short run somewhere in a
// large array, which the hardware prefetchers pick up late.
template <bool kGarbler>
class Prefetcher {
public:
    Prefetcher(const Job& job, size_t c1, size_t n1) : job_(job), c1_(c1) {
        const Plan& p = *job.plan;
        in_lines_ = (n1 * 16 + 63) / 64;
        table_lines_ = (n1 * 32 + 63) / 64;
        n_rows_ = p.input_rows.size();
        const size_t total = n1 ? n_rows_ * in_lines_ + (kGarbler ? 0 : p.n_and * table_lines_) : 0;
        const size_t ops = std::max<size_t>(1, p.ops.size());
        per_op_ = (total + ops - 1) / ops;
        left_ = total;
    }

    void step() {
        const Plan& p = *job_.plan;
        for (size_t i = 0; i < per_op_ && left_ > 0; ++i, --left_) {
            const char* base;
            if (stream_ < n_rows_) {
                const uint64_t w = p.input_rows[stream_];
                base = reinterpret_cast<const char*>(job_.in + (w * job_.batch + c1_) * 2);
                __builtin_prefetch(base + 64 * line_, 0, 2);
                if (++line_ == in_lines_) line_ = 0, ++stream_;
            } else {
                const size_t k = stream_ - n_rows_;
                base = reinterpret_cast<const char*>(job_.tables_r + (k * job_.batch + c1_) * 4);
                __builtin_prefetch(base + 64 * line_, 0, 2);
                if (++line_ == table_lines_) line_ = 0, ++stream_;
            }
        }
    }

private:
    const Job& job_;
    size_t c1_, in_lines_ = 0, table_lines_ = 0, n_rows_ = 0, per_op_ = 0, left_ = 0;
    size_t stream_ = 0, line_ = 0;
};

template <bool kGarbler>
void run_range(const Job& job, size_t lo, size_t hi, uint64_t* work) {
    const Plan& p = *job.plan;
    const Kernels& K = *job.k;
    const size_t batch = job.batch, chunk = job.chunk, n_in = p.n_inputs;
    for (size_t c0 = lo; c0 < hi; c0 += chunk) {
        const size_t n = std::min(chunk, hi - c0);
        const size_t c1 = c0 + n;
        Prefetcher<kGarbler> pf(job, c1, c1 < hi ? std::min(chunk, hi - c1) : 0);
        const auto at = [&](uint64_t r) -> uint64_t* {
            if (r & kOutputRef) return job.out + ((r & ~kOutputRef) * batch + c0) * 2;
            return r < n_in ? const_cast<uint64_t*>(job.in) + (r * batch + c0) * 2
                            : work + (r - n_in) * chunk * 2;
        };
        const uint64_t first = job.offset + c0;
        static const uint64_t kZero[2] = {0, 0};
        const auto operand = [&](const PlanOperand& po, Operand& o) {
            o.n = po.n;
            for (uint32_t s = 0; s < po.n; ++s) o.src[s] = at(po.ref[s]);
            const uint64_t* m = (kGarbler && po.flip) ? job.delta : kZero;
            o.mask[0] = m[0];
            o.mask[1] = m[1];
        };
        Operand a, b;
        for (const PlanOp& op : p.ops) {
            pf.step();
            uint64_t* out = at(op.out);
            operand(op.a, a);
            if (op.op == kOpXor) {
                K.xor_labels(a, out, n, op.stream_out);
                continue;
            }
            operand(op.b, b);
            const size_t t = (op.and_index * batch + c0) * 4;
            if (kGarbler)
                K.garble_and(*job.rk, a, b, out, job.tables_w + t, n, first, op.and_index,
                             job.delta, op.stream_out);
            else
                K.evaluate_and(*job.rk, a, b, out, job.tables_r + t, n, first, op.and_index,
                               op.stream_out);
        }
    }
}

// Scratch buffers are recycled between calls: a fresh allocation of this
// size is a fresh mmap whose page faults (kernel page clearing) cost as much
// as a small garbling. A few idle buffers, bounded in total, are kept; they
// are wiped before they go back.
BufferPool& scratch_pool() {
    static BufferPool* p = new BufferPool(4, size_t(32) << 20);  // never destroyed: no exit-order issues
    return *p;
}

// Wire-label tables of one call: secret, so wiped before they go back to the pool.
class Scratch : public PooledBuffer {
public:
    explicit Scratch(size_t elems) : PooledBuffer(scratch_pool(), elems, /*wipe=*/true) {}
};

template <bool kGarbler>
void run(Job job, unsigned requested) {
    const Plan& p = *job.plan;
    if (job.batch == 0) return;
    job.chunk = chunk_size(p, job.batch);
    const unsigned threads = thread_count(p, job.batch, requested);
    const size_t per_thread = p.n_slots * job.chunk * 2;
    Scratch work(per_thread * threads);
    if (threads <= 1) {
        run_range<kGarbler>(job, 0, job.batch, work.get());
    } else {
        // Equal shares of whole 16-instance groups; all threads finish
        // together and every boundary is a multiple of 16.
        const size_t groups = (job.batch + 15) / 16;
        std::vector<std::thread> pool;
        pool.reserve(threads - 1);
        std::vector<size_t> bounds(threads + 1);
        for (unsigned t = 0; t <= threads; ++t)
            bounds[t] = std::min(job.batch, 16 * (groups * t / threads));
        for (unsigned t = 1; t < threads; ++t) {
            uint64_t* w = work.get() ? work.get() + per_thread * t : nullptr;
            try {
                pool.emplace_back([&job, &bounds, t, w] {
                    run_range<kGarbler>(job, bounds[t], bounds[t + 1], w);
                });
            } catch (...) {  // no thread to be had: do that share here
                run_range<kGarbler>(job, bounds[t], bounds[t + 1], w);
            }
        }
        run_range<kGarbler>(job, bounds[0], bounds[1], work.get());
        for (auto& th : pool) th.join();
    }
}

}  // namespace

size_t chunk_size(const Plan& plan, size_t batch) {
    size_t chunk = kMaxChunk;
    while (chunk > kMinChunk && plan.n_slots * chunk * 16 > kScratchBudget) chunk /= 2;
    // A small batch needs no more than itself (rounded up to whole zmm groups).
    const size_t need = std::max(kMinChunk, (batch + 15) / 16 * 16);
    return std::min(chunk, need);
}

unsigned thread_count(const Plan& plan, size_t batch, unsigned requested) {
    unsigned threads = requested;
    if (threads == 0) {
        const size_t work = batch * (plan.ops.size() + 1);
        threads = (work < kMinParallelWork) ? 1u : worker_count();
    }
    // At least one 16-instance group per thread.
    const size_t groups = (batch + 15) / 16;
    if (groups < threads) threads = unsigned(std::max<size_t>(1, groups));
    return std::max(1u, std::min(threads, 256u));
}

void garble(const Plan& plan, const uint64_t* input_zero, size_t batch, const uint64_t delta[2],
            uint64_t instance_offset, uint64_t* tables, uint64_t* output_zero, unsigned threads) {
    Job job{&plan, &kernels(active_isa()), &fixed_round_keys(), input_zero, batch, delta,
            instance_offset, tables, nullptr, output_zero, 0};
    run<true>(job, threads);
}

void evaluate(const Plan& plan, const uint64_t* input_labels, size_t batch,
              const uint64_t* tables, uint64_t instance_offset, uint64_t* output_labels,
              unsigned threads) {
    Job job{&plan, &kernels(active_isa()), &fixed_round_keys(), input_labels, batch, nullptr,
            instance_offset, nullptr, tables, output_labels, 0};
    run<false>(job, threads);
}

}  // namespace safelight::gc
