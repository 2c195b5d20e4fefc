package fetch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// BatchAPI is BatchGetSecretValue, with the SDK client's exact signature.
// *secretsmanager.Client satisfies it; a client of Options.Clients that
// does not is asked one secret at a time.
type BatchAPI interface {
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

// MaxBatch is the most secret IDs one BatchGetSecretValue call may name.
const MaxBatch = 20

// BatchFallback says that secrets a BatchGetSecretValue call did not
// deliver are asked again one by one with GetSecretValue.
type BatchFallback struct {
	IDs    []string
	Region string
	// Code is why: the whole call's failure, or the code the call reported
	// for these secrets (CodeBatchUnmatched when it said nothing of them).
	Code string
	Err  error
}

// CodeBatchUnmatched: a BatchGetSecretValue answer held neither a value
// nor an error for a secret it was asked for.
const CodeBatchUnmatched = "BatchUnmatched"

// batchable reports whether a request can be served by BatchGetSecretValue,
// which reads the current version only (AWSCURRENT): no other stage, no
// version ID.
func batchable(r *request) bool {
	return r.input.VersionId == nil && (r.input.VersionStage == nil || *r.input.VersionStage == DefaultStage)
}

// batch serves what it can of reqs with BatchGetSecretValue, MaxBatch
// secret IDs a call, per region and failover region, and returns the
// requests still to make one by one: those that cannot be batched, and
// those that a batch did not deliver for a reason that GetSecretValue may
// not share (a throttled or failed item, an item it did not mention, the
// whole call refused). A secret the batch reports missing or denied (a
// permanent code; see Retryable) fails at once, naming it: a single
// GetSecretValue would say the same.
func (f *fetcher) batch(ctx context.Context, reqs []*request) []*request {
	type chunkKey struct{ region, failover string }
	var rest []*request
	var order []chunkKey
	pending := map[chunkKey][]*request{}
	var chunks [][]*request
	for _, r := range reqs {
		c := f.clients[r.region]
		if !batchable(r) || c.err != nil {
			rest = append(rest, r)
			continue
		}
		if _, ok := c.api.(BatchAPI); !ok {
			rest = append(rest, r)
			continue
		}
		k := chunkKey{r.region, failoverRegion(f.p, f.p.Secrets[r.secrets[0]])}
		if _, ok := pending[k]; !ok {
			order = append(order, k)
		}
		pending[k] = append(pending[k], r)
		if len(pending[k]) == MaxBatch {
			chunks = append(chunks, pending[k])
			pending[k] = nil
		}
	}
	for _, k := range order {
		if len(pending[k]) > 0 {
			chunks = append(chunks, pending[k])
		}
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, f.o.Concurrency)
	for _, chunk := range chunks {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			again := f.batchCall(ctx, chunk)
			mu.Lock()
			rest = append(rest, again...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return rest
}

// batchCall makes one BatchGetSecretValue call for chunk (one region, at
// most MaxBatch requests) and returns the requests to make one by one.
func (f *fetcher) batchCall(ctx context.Context, chunk []*request) []*request {
	var targets []Target[BatchAPI]
	first := chunk[0]
	ids := map[string][]string{} // by region: the IDs asked for, by request
	for _, t := range mustTargets(f.targets(first)) {
		api, ok := t.API.(BatchAPI)
		if !ok {
			// Only a failover client can lack it: the primary's was checked.
			break
		}
		targets = append(targets, Target[BatchAPI]{Region: t.Region, API: api})
		for _, r := range chunk {
			id := aws.ToString(r.input.SecretId)
			if t.Region != first.region {
				_, id = f.p.FailoverFor(f.p.Secrets[r.secrets[0]])
			}
			ids[t.Region] = append(ids[t.Region], id)
		}
	}
	for i := range targets {
		targets[i].ID = strings.Join(ids[targets[i].Region], ",")
	}
	start := time.Now()
	var files []string
	for _, r := range chunk {
		files = append(files, r.files(f.p)...)
	}
	c := Call{Op: "BatchGetSecretValue", Files: files, NewBackOff: f.o.NewBackOff, NewThrottleBackOff: f.o.NewThrottleBackOff,
		AttemptTimeout: f.o.AttemptTimeout, PrimaryAttempts: f.o.PrimaryAttempts,
		OnRetry: f.o.OnRetry, OnFailover: f.o.OnFailover, Calls: f.o.Calls}
	out, oc, err := Do(ctx, c, targets, func(ctx context.Context, t Target[BatchAPI]) (*secretsmanager.BatchGetSecretValueOutput, error) {
		out, err := t.API.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids[t.Region]})
		if err == nil && out.NextToken != nil {
			// An explicit list of at most MaxBatch IDs fits in one page.
			return nil, fmt.Errorf("BatchGetSecretValue answered a list of %d IDs with more than one page", len(ids[t.Region]))
		}
		return out, err
	})
	if err != nil {
		if ctx.Err() != nil {
			// No time is left to ask one by one.
			for _, r := range chunk {
				f.failAll(r, SecretError{Region: oc.Region, Code: oc.Code, Attempts: oc.Attempts, Err: err})
			}
			return nil
		}
		f.fallback(BatchFallback{IDs: ids[first.region], Region: oc.Region, Code: oc.Code, Err: err})
		return chunk
	}
	asked := ids[oc.Region]
	var again []*request
	var againIDs []string
	var againCode string
	var againErr error
	for j, r := range chunk {
		id := asked[j]
		if v, ok := findValue(out.SecretValues, id); ok {
			gsv := &secretsmanager.GetSecretValueOutput{ARN: v.ARN, Name: v.Name, VersionId: v.VersionId,
				SecretString: v.SecretString, SecretBinary: v.SecretBinary, VersionStages: v.VersionStages, CreatedDate: v.CreatedDate}
			f.fill(r, gsv, oc, start, true)
			continue
		}
		code, e := CodeBatchUnmatched, errors.New("the BatchGetSecretValue answer did not mention this secret")
		if be, ok := findError(out.Errors, id); ok {
			code = aws.ToString(be.ErrorCode)
			if !ValidCode(code) {
				code = CodeMalformed
			}
			e = fmt.Errorf("BatchGetSecretValue: %s: %s", code, Truncate(aws.ToString(be.Message), MaxErrorText))
			if isPermanentCode(code) {
				// Missing or denied: fail closed, naming the secret.
				f.failAll(r, SecretError{Region: oc.Region, Code: code, Attempts: oc.Attempts, Err: e})
				continue
			}
		}
		again = append(again, r)
		againIDs = append(againIDs, id)
		againCode, againErr = code, e
	}
	if len(again) > 0 {
		f.fallback(BatchFallback{IDs: againIDs, Region: oc.Region, Code: againCode, Err: againErr})
	}
	return again
}

func (f *fetcher) fallback(b BatchFallback) {
	if f.o.OnBatchFallback != nil {
		f.o.OnBatchFallback(b)
	}
}

// mustTargets drops the error of targets: batch only chunks requests whose
// region has a client.
func mustTargets(t []Target[API], _ error) []Target[API] { return t }

// findValue finds the answer for id, a name, a partial ARN or a full ARN,
// as Secrets Manager resolves them.
func findValue(values []types.SecretValueEntry, id string) (types.SecretValueEntry, bool) {
	for _, v := range values {
		if MatchesID(id, aws.ToString(v.ARN), aws.ToString(v.Name)) {
			return v, true
		}
	}
	return types.SecretValueEntry{}, false
}

// findError finds the error reported for id, which AWS names as it was
// asked for.
func findError(errs []types.APIErrorType, id string) (types.APIErrorType, bool) {
	for _, e := range errs {
		if aws.ToString(e.SecretId) == id {
			return e, true
		}
	}
	return types.APIErrorType{}, false
}

// MatchesID reports whether the secret with this ARN and name is the one
// id asks for: the full ARN, the ARN without its six-character random
// suffix (a partial ARN), or the name.
func MatchesID(id, arn, name string) bool {
	if !strings.HasPrefix(id, "arn:") {
		return id == name
	}
	if id == arn {
		return true
	}
	// A partial ARN: the ARN less "-" and six characters.
	return len(arn) == len(id)+7 && strings.HasPrefix(arn, id) && arn[len(id)] == '-'
}
