package initfetch

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
)

// CallsLogMessage is the message of the line that counts the calls made to
// AWS by API, region and result: once in the init container, and now and
// then in the refresh sidecar. Alert on its throttled and failover-region
// counts before the account's quota is spent.
const CallsLogMessage = refresh.CallsLogMessage

// logFailover logs a request's move to the failover region, in one line a
// platform team can alert on: the primary region did not answer.
func logFailover(log *slog.Logger) func(fetch.Failover) {
	return func(f fetch.Failover) {
		log.Warn("the primary region did not answer; reading the replica in the failover region",
			"id", f.ID, "files", f.Files, "operation", f.Op, "from", f.From, "to", f.To, "replicaId", f.ReplicaID,
			"attempts", f.Attempts, "code", f.Code, "error", fetch.ErrorText(f.Err))
	}
}

// logBatchFallback logs secrets that a BatchGetSecretValue call did not
// deliver and that are asked again one by one.
func logBatchFallback(log *slog.Logger) func(fetch.BatchFallback) {
	return func(b fetch.BatchFallback) {
		log.Warn("BatchGetSecretValue did not deliver these secrets; asking for them one by one",
			"ids", b.IDs, "region", b.Region, "code", b.Code, "error", fetch.ErrorText(b.Err))
	}
}

// failoverEndpoint points the client of the plan's failover region at
// $SECRETFETCH_FAILOVER_ENDPOINT_URL, when both are set:
// AWS_ENDPOINT_URL_SECRETS_MANAGER names one endpoint for every region.
func failoverEndpoint(getenv func(string) string, p *plan.Plan) func(*secretsmanager.Options) {
	url := getenv(plan.EnvFailoverEndpoint)
	return func(o *secretsmanager.Options) {
		if url != "" && p.FailoverRegion != "" && o.Region == p.FailoverRegion {
			o.BaseEndpoint = aws.String(url)
		}
	}
}
