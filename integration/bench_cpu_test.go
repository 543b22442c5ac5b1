package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The store benchmarks share two cores with the PostgreSQL server and,
// on a shared machine, with whatever else runs: throughput alone is noisy.
// cpuMeter also counts the CPU time each request costs, which other load
// changes much less: this process's (server and load generator alike) and,
// for a PostgreSQL store on this machine, the server processes' (every
// process pg_stat_activity lists, read from /proc).

// clockTicks is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100
// on Linux).
const clockTicks = 100

// cpuMeter is the CPU time used so far, for the difference at the end of
// a benchmark.
type cpuMeter struct {
	dsn  string                // the PostgreSQL store's DSN, "" for Badger
	self time.Duration         // this process's CPU time at the start
	pg   map[int]time.Duration // each server process's CPU time at the start
}

// startCPU records the CPU time used so far by this process and, when
// storage (a Caddyfile storage argument) names a PostgreSQL database, by
// that server's processes. Call it just before b.ResetTimer, after the
// store is open.
func startCPU(b *testing.B, storage string) *cpuMeter {
	b.Helper()
	m := &cpuMeter{self: selfCPU()}
	if dsn, ok := strings.CutPrefix(storage, "postgres `"); ok {
		m.dsn = strings.TrimSuffix(dsn, "`")
		m.pg = pgCPU(b, m.dsn)
	}
	return m
}

// report adds the CPU time per operation since startCPU, over n
// operations, as go_cpu_µs/op and, for PostgreSQL, pg_cpu_µs/op. Call it
// after b.StopTimer.
func (m *cpuMeter) report(b *testing.B, n int) {
	b.Helper()
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(max(n, 1)) }
	b.ReportMetric(per(selfCPU()-m.self), "go_cpu_µs/op")
	if m.dsn == "" {
		return
	}
	var used time.Duration
	for pid, now := range pgCPU(b, m.dsn) {
		used += now - m.pg[pid]
	}
	b.ReportMetric(per(used), "pg_cpu_µs/op")
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgCPU is the CPU time of every process of the PostgreSQL server dsn
// names (backends of every database and the server's own workers), by
// pid; a process whose /proc entry cannot be read counts as none.
func pgCPU(b *testing.B, dsn string) map[int]time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// pgxpool's parser, so that pool settings in the DSN are not sent to
	// the server.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		b.Fatalf("connecting to read the server's processes: %v", err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		out[int(pid)] = procCPU(int(pid))
	}
	return out
}

// procCPU is a process's user and system CPU time from /proc/<pid>/stat
// (0 when it cannot be read).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (state is field 3, utime 14).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}
