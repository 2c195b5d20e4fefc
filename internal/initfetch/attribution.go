package initfetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// maxAppID bounds the app ID in the user agent. A namespace (63) and a pod
// name (253) fit.
const maxAppID = 320

// loadAWSConfig loads the SDK's default configuration and, when the pod is
// known, names it in every request: in the user agent (app ID), which
// CloudTrail records as userAgent, and, with IRSA, in the role session
// name, which CloudTrail records in the assumed role's ARN. A security team
// can then tell from CloudTrail alone which pod read a secret, and when.
func loadAWSConfig(ctx context.Context, getenv func(string) string, extra ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := slices.Clone(extra)
	if ns, name := getenv(plan.EnvPodNamespace), getenv(plan.EnvPodName); ns != "" && name != "" {
		session := RoleSessionName(ns, name)
		opts = append(opts,
			config.WithAppID(AppID(ns, name)),
			config.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = session }))
	}
	// fetch.LoadConfig, not config.LoadDefaultConfig: it caps the answers
	// that the credential providers read (STS for IRSA, the Pod Identity
	// agent), which the Secrets Manager clients' own cap does not reach.
	cfg, err := fetch.LoadConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	return cfg, nil
}

// AppID is the pod's app ID in the SDK user agent: "<namespace>.<name>".
// A namespace holds no '.', so the first one splits the two. The SDK
// replaces any character a user agent cannot carry with '-'.
func AppID(namespace, name string) string {
	id := namespace + "." + name
	if len(id) > maxAppID {
		id = id[:maxAppID]
	}
	return id
}

// RoleSessionName is a valid STS role session name for the pod: its
// namespace and name, "<namespace>.<name>", with any character STS does not
// allow ([\w+=,.@-]) replaced by '-', at least 2 and at most 64 characters.
// A longer one keeps its first 55 characters and ends with 8 hex digits of a
// hash of the whole, so that two long names stay apart.
func RoleSessionName(namespace, name string) string {
	full := namespace + "." + name
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_+=,.@-", r):
			return r
		}
		return '-'
	}, full)
	if len(s) > 64 {
		sum := sha256.Sum256([]byte(full))
		s = s[:55] + "-" + hex.EncodeToString(sum[:4])
	}
	for len(s) < 2 {
		s += "-"
	}
	return s
}
