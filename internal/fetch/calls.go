package fetch

import (
	"cmp"
	"slices"
	"sync"
)

// Calls counts the calls made to AWS by API, region and result, every
// attempt included, so that a platform team sees its share of the account's
// quota and can alert before it is spent. The init container logs them once
// (it lives seconds); the refresh sidecar logs them as they grow. A nil
// *Calls counts nothing.
type Calls struct {
	mu sync.Mutex
	m  map[callKey]int
}

type callKey struct{ api, region, result string }

// CallCount is one line of the counts, as logged.
type CallCount struct {
	API    string `json:"api"`
	Region string `json:"region"`
	// Result is ResultOK or the error code (see Code).
	Result string `json:"result"`
	Count  int    `json:"count"`
}

// ResultOK is the result of a call that succeeded.
const ResultOK = "OK"

// ResultOf is the result a call is counted under: ResultOK, or the code of
// its error.
func ResultOf(err error) string {
	if err == nil {
		return ResultOK
	}
	return Code(err)
}

// Add counts one call. The region "" is the SDK's default one.
func (c *Calls) Add(api, region, result string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[callKey]int{}
	}
	// Results are codes of bounded shape (ValidCode) or our own constants,
	// so the map stays small.
	c.m[callKey{api, region, result}]++
}

// Counts returns the counts, sorted by API, region and result.
func (c *Calls) Counts() []CallCount {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	out := make([]CallCount, 0, len(c.m))
	for k, n := range c.m {
		out = append(out, CallCount{API: k.api, Region: k.region, Result: k.result, Count: n})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b CallCount) int {
		return cmp.Or(cmp.Compare(a.API, b.API), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Result, b.Result))
	})
	return out
}

// Matching is the number of calls counted whose line passes keep (every
// call for a nil keep).
func (c *Calls) Matching(keep func(CallCount) bool) int {
	n := 0
	for _, cc := range c.Counts() {
		if keep == nil || keep(cc) {
			n += cc.Count
		}
	}
	return n
}
