package main

import (
	"io"

	"github.com/hashicorp/go-hclog"
	agentinject "github.com/hashicorp/vault-k8s/agent-inject"
	"github.com/hashicorp/vault-k8s/agent-inject/agent"
)

// newHandler returns vault-k8s's admission handler with the settings its
// injector command gives it by default (subcommand/injector: the flags'
// defaults), and a Vault address as a chart would set it. Clientset stays
// nil: Handler.Handle does not use it. Its log goes to w at info level, as
// the injector logs by default ("Request received" for every request).
func newHandler(w io.Writer) *agentinject.Handler {
	return &agentinject.Handler{
		VaultAddress:               "https://vault.vault.svc:8200",
		VaultAuthType:              agent.DefaultVaultAuthType,
		VaultAuthPath:              agent.DefaultVaultAuthPath,
		ImageVault:                 agent.DefaultVaultImage,
		RequireAnnotation:          true,
		Log:                        hclog.New(&hclog.LoggerOptions{Name: "handler", Level: hclog.Info, Output: w}),
		UserID:                     "100",
		GroupID:                    "1000",
		SetSecurityContext:         agent.DefaultAgentSetSecurityContext,
		DefaultTemplate:            agent.DefaultTemplateType,
		ResourceRequestCPU:         agent.DefaultResourceRequestCPU,
		ResourceRequestMem:         agent.DefaultResourceRequestMem,
		ResourceLimitCPU:           agent.DefaultResourceLimitCPU,
		ResourceLimitMem:           agent.DefaultResourceLimitMem,
		ExitOnRetryFailure:         agent.DefaultTemplateConfigExitOnRetryFailure,
		StaticSecretRenderInterval: "",
		AuthMinBackoff:             "",
		AuthMaxBackoff:             "",
	}
}
