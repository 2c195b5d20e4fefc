package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
)

// vaultSecrets are the ten secrets of the Vault Agent Injector's pod, one
// agent-inject-secret-<name> annotation each, as vault-k8s's own docs and
// tests write them: the secretfetch review asks for ten secrets too.
var vaultSecrets = []string{
	"db-password", "db-username", "stripe-api-key", "stripe-webhook-secret", "jwt-signing-key",
	"jwt-signing-key-previous", "redis-auth", "kafka-sasl", "tls-client", "datadog-api-key",
}

// vaultReview turns secretfetch's AdmissionReview (hack/testdata/admissionreview.json)
// into the same review for the Vault Agent Injector: the same pod, request
// and user, with the secretfetch.io/ annotations replaced by vault-k8s's
// (agent-inject, role, and ten agent-inject-secret-<name>). Every other
// field stays as it is, so both webhooks decode a pod of the same size and
// shape.
func vaultReview(ours []byte) ([]byte, error) {
	var review map[string]any
	if err := json.Unmarshal(ours, &review); err != nil {
		return nil, fmt.Errorf("decoding the review: %w", err)
	}
	req, _ := review["request"].(map[string]any)
	obj, _ := req["object"].(map[string]any)
	meta, _ := obj["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		return nil, fmt.Errorf("the review has no request.object.metadata.annotations")
	}
	out := map[string]any{}
	for k, v := range maps.All(ann) {
		if !strings.HasPrefix(k, "secretfetch.io/") {
			out[k] = v
		}
	}
	out["vault.hashicorp.com/agent-inject"] = "true"
	out["vault.hashicorp.com/role"] = "payments-api"
	for _, name := range vaultSecrets {
		out["vault.hashicorp.com/agent-inject-secret-"+name] = "secret/data/payments/" + name
	}
	meta["annotations"] = out
	return json.Marshal(review)
}
