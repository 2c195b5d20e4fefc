// Package mutate turns a pod's secretfetch.io annotations into a mutated pod:
// a memory-backed volume, an init container that runs init-fetch with an
// encoded plan, and read-only mounts of the volume in the containers that
// read the secrets.
//
// The flow is parse, apply, patch. Parse reads the annotations with the
// grammar package (the only code that reads them; init-fetch and the render
// command use it too), checks the pod spec against them, and returns a
// validated Injection or every problem at once as a field.ErrorList. Apply is a pure, idempotent function of the pod,
// the Injection and the webhook's Config. Handler adapts both to admission
// requests and lets controller-runtime compute the JSON patch, from the part
// of the pod that Apply writes (podView). Endpoint serves Handler over HTTP,
// reading each AdmissionReview and its pod in one pass.
//
// # Who owns the files
//
// init-fetch writes each file with the secret's mode, as the UID and GID the
// init container runs as. A 0400 file is readable only by its owner, so the
// init container runs as the UID of the containers that read the files (the
// readers: the selected containers). For each reader the UID is its
// securityContext.runAsUser, else the pod's spec.securityContext.runAsUser;
// the GID likewise from runAsGroup.
//
//   - When every reader has a UID, they agree, and it is not 0, the init
//     container runs as that UID.
//   - When every file is readable without being its owner (mode 0444, or
//     mode 0440 with spec.securityContext.fsGroup set, which puts every
//     container in the volume's group), the owner does not matter and the
//     init container runs as NonRootUID (65532) if the first rule does not
//     apply.
//   - Otherwise the pod is denied, and the message names the field to set:
//     the runAsUser of a reader without one, or of the readers that
//     disagree; and it offers mode 0440 with fsGroup as the alternative.
//
// Readers that run as root (UID 0) are the third case unless the files are
// group- or world-readable. The init container never runs as root, so it
// would write a 0400 file as 65532, and root could read that only through
// CAP_DAC_OVERRIDE. Relying on that capability would break silently for a
// container that drops ALL capabilities or runs in a user namespace, so the
// webhook denies such a pod and asks for mode 0440 with fsGroup (or 0444), or
// a non-root UID. It never makes the init container root.
//
// The GID is the readers' common runAsGroup. When no reader sets one it is
// spec.securityContext.fsGroup, else the UID: a 0400 file needs no group, and
// a 0440 file is then read by its owner. When the readers' groups differ, the pod is denied only
// if some file is 0440 without fsGroup (the group is how it is read);
// otherwise the GID is fsGroup, else the UID.
//
// # Credentials
//
// The webhook holds no AWS permissions. init-fetch uses the pod's identity:
// the IRSA settings (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE) or the EKS Pod
// Identity settings (AWS_CONTAINER_CREDENTIALS_FULL_URI,
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE), plus AWS_REGION,
// AWS_DEFAULT_REGION and AWS_STS_REGIONAL_ENDPOINTS, of the first app
// container that has them, and the volume mount that holds the token file.
// Only literal values are copied. The EKS webhooks may run before or after
// this one; the configuration's reinvocationPolicy: IfNeeded calls this
// webhook again after them, and Apply then copies the settings again.
package mutate
