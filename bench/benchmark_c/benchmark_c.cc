// The C API of benchmark_c.h over Google Benchmark 1.7 — the only C++ in shardlab. It keeps
// Google Benchmark's run loop, statistics and JSON writer, and adds what a C caller needs:
// arguments validated here (Google Benchmark aborts on a bad one), no exception crossing into C,
// errors returned as sl_status, and the JSON buffered and written only when the run succeeded.
// The runtime's headers are C without extern "C" blocks of their own.
extern "C" {
#include "shardlab/status.h"
}
#include "bench/benchmark_c/benchmark_c.h"

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

struct sl_bench {
    benchmark::internal::Benchmark *b;
    sl_bench_fn fn;
    void *user;
    std::string name;
    int n_args; // -1 until the first argument list
    bool real_time;
    bool manual_time;
};

// What a benchmark function sees: Google Benchmark's state plus what the C side must track to
// keep calls that Google Benchmark would abort on (pausing a stopped timer, an argument index
// out of range) harmless.
struct sl_bench_state {
    benchmark::State *s;
    const sl_bench *b;
    bool started, finished, paused;
};

namespace {

std::vector<std::unique_ptr<sl_bench>> &registry() {
    static std::vector<std::unique_ptr<sl_bench>> r;
    return r;
}

std::map<std::string, std::string> &context_values() {
    static std::map<std::string, std::string> c;
    return c;
}

sl_status arg_count(sl_bench *b, int n, const char *what) {
    if (n <= 0)
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: %s: no arguments", b->name.c_str(), what);
    if (b->n_args >= 0 && b->n_args != n) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: %s: %d argument(s), but earlier runs of this benchmark have %d; "
                            "every run needs the same number",
                            b->name.c_str(), what, n, b->n_args);
    }
    b->n_args = n;
    return SL_OK;
}

// Sends the runs to the console table and to the JSON writer; collects Google Benchmark's own
// error text (a bad filter) instead of letting it reach stderr.
class TeeReporter : public benchmark::BenchmarkReporter {
  public:
    TeeReporter(benchmark::BenchmarkReporter *console, benchmark::BenchmarkReporter *json)
        : console_(console), json_(json) {
        SetErrorStream(&errors_);
    }
    bool ReportContext(const Context &context) override {
        reported_ = true;
        bool ok = true;
        if (console_) ok = console_->ReportContext(context) && ok;
        if (json_) ok = json_->ReportContext(context) && ok;
        return ok;
    }
    void ReportRuns(const std::vector<Run> &runs) override {
        if (console_) console_->ReportRuns(runs);
        if (json_) json_->ReportRuns(runs);
    }
    void Finalize() override {
        if (console_) console_->Finalize();
        if (json_) json_->Finalize();
    }
    std::string errors() const {
        return errors_.str();
    }
    bool reported() const {
        return reported_;
    }

  private:
    benchmark::BenchmarkReporter *console_, *json_;
    std::ostringstream errors_;
    bool reported_ = false;
};

sl_status write_file(const char *path, const std::string &text) {
    const std::string tmp = std::string(path) + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "w");
    if (!f) {
        return sl_error_set(SL_ERR_IO, "benchmark results: cannot create '%s': %s", tmp.c_str(),
                            std::strerror(errno));
    }
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed || std::rename(tmp.c_str(), path) != 0) {
        const int e = errno;
        std::remove(tmp.c_str());
        return sl_error_set(SL_ERR_IO, "benchmark results: cannot write '%s': %s", path,
                            std::strerror(e));
    }
    return SL_OK;
}

// Google Benchmark takes the defaults of --benchmark_repetitions and --benchmark_min_time only
// as flags; every run sets both, so nothing leaks from one run into the next.
void set_flags(int repetitions, double min_time) {
    char prog[] = "shardlab";
    char reps[64], mt[64];
    std::snprintf(reps, sizeof reps, "--benchmark_repetitions=%d",
                  repetitions > 0 ? repetitions : 1);
    std::snprintf(mt, sizeof mt, "--benchmark_min_time=%.17g", min_time > 0 ? min_time : 0.5);
    char *argv[] = {prog, reps, mt, nullptr};
    int argc = 3;
    benchmark::Initialize(&argc, argv);
}

sl_status run(const sl_bench_run_opts *o, int *n_run) {
    std::ostringstream json_text;
    std::unique_ptr<benchmark::BenchmarkReporter> console, json;
    if (o->console) {
        // no colour: under mpirun stdout is a pseudo-terminal even when it ends in a file
        console.reset(new benchmark::ConsoleReporter(benchmark::ConsoleReporter::OO_Tabular));
    }
    if (o->json_path) {
        json.reset(new benchmark::JSONReporter());
        json->SetOutputStream(&json_text);
        json->SetErrorStream(&json_text);
    }
    set_flags(o->repetitions, o->min_time);
    TeeReporter tee(console.get(), json.get());
    const std::string spec = o->filter && *o->filter ? o->filter : ".";
    const size_t n = benchmark::RunSpecifiedBenchmarks(&tee, spec);
    if (n_run) *n_run = static_cast<int>(n);
    if (n == 0 || !tee.reported()) {
        std::string why = tee.errors();
        while (!why.empty() && why.back() == '\n')
            why.pop_back();
        if (why.find("Could not compile") == std::string::npos) return SL_OK;
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "benchmark filter '%s' is not a valid extended "
                            "regular expression (%s)",
                            spec.c_str(), why.c_str());
    }
    if (o->json_path) SL_TRY(write_file(o->json_path, json_text.str()));
    return SL_OK;
}

benchmark::State &S(sl_bench_state *st) {
    return *st->s;
}

} // namespace

extern "C" {

sl_status sl_bench_register(const char *name, sl_bench_fn fn, void *user, sl_bench **out) {
    *out = nullptr;
    if (!name || !*name || !fn) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_bench_register: a name and a function are "
                            "required (name %s, function %s)",
                            name ? name : "NULL", fn ? "set" : "NULL");
    }
    try {
        std::unique_ptr<sl_bench> b(new sl_bench{nullptr, fn, user, name, -1, false, false});
        sl_bench *self = b.get();
        self->b = benchmark::RegisterBenchmark(name, [self](benchmark::State &s) {
            sl_bench_state st{&s, self, false, false, false};
            self->fn(&st, self->user);
        });
        registry().push_back(std::move(b));
        *out = self;
        return SL_OK;
    } catch (const std::exception &e) {
        return sl_error_set(SL_ERR_OOM, "sl_bench_register(%s): %s", name, e.what());
    }
}

sl_status sl_bench_add_arg(sl_bench *b, int64_t a) {
    return sl_bench_add_args(b, &a, 1);
}

sl_status sl_bench_add_args(sl_bench *b, const int64_t *v, int n) {
    SL_TRY(arg_count(b, n, "add_args"));
    b->b->Args(std::vector<int64_t>(v, v + n));
    return SL_OK;
}

sl_status sl_bench_add_range(sl_bench *b, int64_t lo, int64_t hi) {
    const int64_t lohi[1][2] = {{lo, hi}};
    return sl_bench_add_ranges(b, lohi, 1);
}

sl_status sl_bench_add_ranges(sl_bench *b, const int64_t (*lohi)[2], int n) {
    std::vector<std::pair<int64_t, int64_t>> r;
    for (int i = 0; i < n; i++) {
        if (lohi[i][0] < 0 || lohi[i][1] < lohi[i][0]) {
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "%s: range of argument %d is [%lld, %lld]; expected 0 <= lo <= hi",
                                b->name.c_str(), i, (long long)lohi[i][0], (long long)lohi[i][1]);
        }
        r.emplace_back(lohi[i][0], lohi[i][1]);
    }
    SL_TRY(arg_count(b, n, "add_ranges"));
    b->b->Ranges(r);
    return SL_OK;
}

sl_status sl_bench_add_dense_range(sl_bench *b, int64_t lo, int64_t hi, int64_t step) {
    if (step <= 0 || step > INT32_MAX || hi < lo) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: dense range %lld..%lld step %lld; expected lo <= hi and a "
                            "positive step",
                            b->name.c_str(), (long long)lo, (long long)hi, (long long)step);
    }
    SL_TRY(arg_count(b, 1, "add_dense_range"));
    b->b->DenseRange(lo, hi, static_cast<int>(step));
    return SL_OK;
}

sl_status sl_bench_set_range_multiplier(sl_bench *b, int multiplier) {
    if (multiplier < 2) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: range multiplier %d; expected >= 2",
                            b->name.c_str(), multiplier);
    }
    b->b->RangeMultiplier(multiplier);
    return SL_OK;
}

sl_status sl_bench_set_arg_names(sl_bench *b, const char *const *names, int n) {
    SL_TRY(arg_count(b, n, "set_arg_names"));
    b->b->ArgNames(std::vector<std::string>(names, names + n));
    return SL_OK;
}

sl_status sl_bench_set_iterations(sl_bench *b, int64_t n) {
    if (n <= 0) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: %lld iterations; expected >= 1",
                            b->name.c_str(), (long long)n);
    }
    b->b->Iterations(n);
    return SL_OK;
}

sl_status sl_bench_set_repetitions(sl_bench *b, int n) {
    if (n <= 0) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: %d repetitions; expected >= 1",
                            b->name.c_str(), n);
    }
    b->b->Repetitions(n);
    return SL_OK;
}

sl_status sl_bench_set_min_time(sl_bench *b, double seconds) {
    if (!(seconds > 0)) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: minimum time %g s; expected > 0",
                            b->name.c_str(), seconds);
    }
    b->b->MinTime(seconds);
    return SL_OK;
}

sl_status sl_bench_set_min_warmup_time(sl_bench *b, double seconds) {
    if (!(seconds >= 0)) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: warm-up time %g s; expected >= 0",
                            b->name.c_str(), seconds);
    }
    b->b->MinWarmUpTime(seconds);
    return SL_OK;
}

sl_status sl_bench_use_real_time(sl_bench *b) {
    if (b->manual_time) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: uses manual time already; a benchmark has one clock",
                            b->name.c_str());
    }
    if (!b->real_time) b->b->UseRealTime();
    b->real_time = true;
    return SL_OK;
}

sl_status sl_bench_use_manual_time(sl_bench *b) {
    if (b->real_time) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: uses real time already; a benchmark has one clock",
                            b->name.c_str());
    }
    if (!b->manual_time) b->b->UseManualTime();
    b->manual_time = true;
    return SL_OK;
}

void sl_bench_set_time_unit(sl_bench *b, sl_bench_time_unit unit) {
    static const benchmark::TimeUnit units[] = {benchmark::kNanosecond, benchmark::kMicrosecond,
                                                benchmark::kMillisecond, benchmark::kSecond};
    b->b->Unit(units[unit]);
}

void sl_bench_clear(void) {
    benchmark::ClearRegisteredBenchmarks();
    registry().clear();
}

bool sl_bench_keep_running(sl_bench_state *st) {
    if (st->finished) return false;
    st->started = true;
    st->paused = false;
    if (S(st).KeepRunning()) return true;
    st->finished = true;
    return false;
}

void sl_bench_pause_timing(sl_bench_state *st) {
    if (!st->started || st->finished || st->paused || S(st).error_occurred()) return;
    st->paused = true;
    S(st).PauseTiming();
}

void sl_bench_resume_timing(sl_bench_state *st) {
    if (!st->paused || S(st).error_occurred()) return;
    st->paused = false;
    S(st).ResumeTiming();
}

int64_t sl_bench_arg(const sl_bench_state *st, int i) {
    if (i < 0 || i >= st->b->n_args) return 0;
    return st->s->range(static_cast<size_t>(i));
}

int64_t sl_bench_iterations(const sl_bench_state *st) {
    return st->s->iterations();
}

int64_t sl_bench_max_iterations(const sl_bench_state *st) {
    return st->s->max_iterations;
}

void sl_bench_set_items_processed(sl_bench_state *st, int64_t items) {
    S(st).SetItemsProcessed(items);
}

void sl_bench_set_bytes_processed(sl_bench_state *st, int64_t bytes) {
    S(st).SetBytesProcessed(bytes);
}

void sl_bench_set_counter(sl_bench_state *st, const char *name, double value, unsigned flags) {
    int f = benchmark::Counter::kDefaults;
    if (flags & SL_BENCH_COUNTER_RATE) f |= benchmark::Counter::kIsRate;
    if (flags & SL_BENCH_COUNTER_AVG_ITERATIONS) f |= benchmark::Counter::kAvgIterations;
    if (flags & SL_BENCH_COUNTER_ITER_INVARIANT) f |= benchmark::Counter::kIsIterationInvariant;
    if (flags & SL_BENCH_COUNTER_INVERT) f |= benchmark::Counter::kInvert;
    S(st).counters[name] =
        benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f),
                           (flags & SL_BENCH_COUNTER_KIBI) ? benchmark::Counter::kIs1024
                                                           : benchmark::Counter::kIs1000);
}

void sl_bench_set_label(sl_bench_state *st, const char *label) {
    S(st).SetLabel(label);
}

void sl_bench_set_iteration_time(sl_bench_state *st, double seconds) {
    S(st).SetIterationTime(seconds);
}

void sl_bench_skip_with_error(sl_bench_state *st, const char *message) {
    if (S(st).error_occurred()) return;
    if (st->paused) sl_bench_resume_timing(st);
    S(st).SkipWithError(message);
}

bool sl_bench_error_occurred(const sl_bench_state *st) {
    return st->s->error_occurred();
}

sl_status sl_bench_add_context(const char *key, const char *value) {
    try {
        auto &c = context_values();
        const auto it = c.find(key);
        if (it != c.end()) {
            if (it->second == value) return SL_OK;
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "benchmark context '%s' is already '%s'; cannot set it to '%s'",
                                key, it->second.c_str(), value);
        }
        c.emplace(key, value);
        benchmark::AddCustomContext(key, value);
        return SL_OK;
    } catch (const std::exception &e) {
        return sl_error_set(SL_ERR_OOM, "benchmark context '%s': %s", key, e.what());
    }
}

sl_status sl_bench_run(const sl_bench_run_opts *opts, int *n_run) {
    if (n_run) *n_run = 0;
    const sl_bench_run_opts none = {nullptr, nullptr, false, 0, 0};
    try {
        return run(opts ? opts : &none, n_run);
    } catch (const std::exception &e) {
        return sl_error_set(SL_ERR_INTERNAL, "running the benchmarks: %s", e.what());
    }
}

} // extern "C"
