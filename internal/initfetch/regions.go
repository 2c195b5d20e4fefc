package initfetch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

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

// sdkClients are SDK clients with the pod named in the user agent. With a
// failover region, that region's clients have credentials of their own,
// from STS in that region (its regional endpoint, or
// $SECRETFETCH_FAILOVER_STS_ENDPOINT_URL): with IRSA, a region whose STS
// is down cannot sign a request, and the failover region must not depend
// on it. A failure to get credentials is classified as any other: a
// connection error or a 5xx moves the call to the failover region, a
// denial does not.
func sdkClients(ctx context.Context, p *plan.Plan, getenv func(string) string) (fetch.ClientFunc, error) {
	cfg, err := loadAWSConfig(ctx, getenv)
	if err != nil {
		return nil, err
	}
	primary := fetch.SDKClients(cfg)
	if p.FailoverRegion == "" {
		return primary, nil
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(p.FailoverRegion)}
	if url := getenv(plan.EnvFailoverSTSEndpoint); url != "" {
		opts = append(opts, config.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) {
			// The SDK may apply the options more than once, and before it
			// has made the client.
			if _, done := o.Client.(stsAt); !done && o.Client != nil {
				o.Client = stsAt{o.Client, url}
			}
		}))
	}
	fcfg, err := loadAWSConfig(ctx, getenv, opts...)
	if err != nil {
		return nil, fmt.Errorf("the failover region %s: %w", p.FailoverRegion, err)
	}
	failover := fetch.SDKClients(fcfg, failoverEndpoint(getenv, p))
	return func(region string) (fetch.API, error) {
		if region == p.FailoverRegion {
			return failover(region)
		}
		return primary(region)
	}, nil
}

// stsAt sends AssumeRoleWithWebIdentity to url.
type stsAt struct {
	stscreds.AssumeRoleWithWebIdentityAPIClient
	url string
}

func (s stsAt) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	optFns = append(slices.Clip(optFns), func(o *sts.Options) { o.BaseEndpoint = aws.String(s.url) })
	return s.AssumeRoleWithWebIdentityAPIClient.AssumeRoleWithWebIdentity(ctx, in, optFns...)
}
