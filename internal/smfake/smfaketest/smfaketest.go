// Package smfaketest holds what tests that drive the AWS SDK against smfake
// share.
package smfaketest

import (
	"os"
	"path/filepath"
	"testing"
)

// IsolateEnv keeps the developer's AWS settings out of a test: no config or
// credentials file, profile, keys, role, Pod Identity, region, endpoint,
// instance metadata or retry settings of the caller's reach the SDK.
func IsolateEnv(t testing.TB) {
	t.Helper()
	none := filepath.Join(os.TempDir(), "secretfetch-no-such-aws-file")
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "",
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "", "AWS_ENDPOINT_URL_STS": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "", "AWS_RETRY_MODE": "",
	} {
		t.Setenv(k, v)
	}
}
