package fetch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

// BenchmarkFetch fetches 1, 20 and 100 secrets from smfake with 2 ms of
// latency added to every request, through the real SDK client over loopback,
// at concurrency 1 and at the default. The 2 ms stand in for the round trip
// to Secrets Manager inside a region; the ratio between the two concurrency
// settings is the figure that matters.
//
//	go test -run '^$' -bench BenchmarkFetch -benchtime 20x ./internal/fetch/
func BenchmarkFetch(b *testing.B) {
	fk, o := fake(b)
	fk.InjectFault(smfake.Fault{Operation: opGet, Latency: 2 * time.Millisecond})
	for _, n := range []int{1, 20, 100} {
		p := &plan.Plan{Version: 1, Dir: "/d", Region: fk.Region()}
		for i := range n {
			name := fmt.Sprintf("bench/%d/s%03d", n, i)
			create(b, fk, name, smfake.Value{String: fmt.Sprintf(`{"password":"value-%03d"}`, i)})
			p.Secrets = append(p.Secrets, plan.Secret{File: fmt.Sprintf("s%03d", i), ID: name, Key: "password"})
		}
		for _, conc := range []int{1, DefaultConcurrency} {
			b.Run(fmt.Sprintf("secrets=%d/concurrency=%d", n, conc), func(b *testing.B) {
				fetchLoop(b, p, o, conc)
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000/float64(n), "ms/secret")
			})
		}
	}
	fk.ResetRequests() // the log grows with every request; keep memory flat between runs
}

// BenchmarkFetchSlowNetwork is BenchmarkFetch's 20 secrets with 20 ms per
// request instead of 2 ms: when the network dominates the CPU cost of a
// request (signing, the fake's SigV4 check, loopback syscalls), the speed-up
// of the default concurrency approaches its ceiling of 20/ceil(20/8) = 6.7x.
func BenchmarkFetchSlowNetwork(b *testing.B) {
	fk, o := fake(b)
	fk.InjectFault(smfake.Fault{Operation: opGet, Latency: 20 * time.Millisecond})
	p := &plan.Plan{Version: 1, Dir: "/d", Region: fk.Region()}
	for i := range 20 {
		name := fmt.Sprintf("slow/s%03d", i)
		create(b, fk, name, smfake.Value{String: fmt.Sprintf("value-%03d", i)})
		p.Secrets = append(p.Secrets, plan.Secret{File: fmt.Sprintf("s%03d", i), ID: name})
	}
	for _, conc := range []int{1, DefaultConcurrency} {
		b.Run(fmt.Sprintf("secrets=20/concurrency=%d", conc), func(b *testing.B) {
			fetchLoop(b, p, o, conc)
		})
	}
}

// fetchLoop is the measured loop: the whole plan fetched at the given
// concurrency, the values zeroed as init-fetch does.
func fetchLoop(b *testing.B, p *plan.Plan, o Options, concurrency int) {
	o.Concurrency = concurrency
	for b.Loop() {
		res, err := Fetch(context.Background(), p, o)
		if err != nil {
			b.Fatal(err)
		}
		ZeroAll(res)
	}
}
