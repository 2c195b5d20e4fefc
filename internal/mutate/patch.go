package mutate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// The JSON patch is built from what Apply can change, rather than by
// marshalling a view of the pod before and after Apply and diffing the two
// (referencePatch, in patch_reference_test.go, which TestPatchDifferential and
// FuzzPatchDifferential hold this construction to). Apply writes a known,
// small part of the pod:
//   - the namespace (a pod made by a controller arrives without one) and the
//     status annotation;
//   - the secrets and env file volumes, whole, added or updated in place;
//   - the init container and the refresh sidecar, whole, added in front or
//     updated in place;
//   - of every other container, volume mounts and env entries: appended, or
//     updated in place.
//
// Nothing is ever removed or moved (Apply's contract). patchSnapshot keeps
// what Apply may overwrite (a shallow copy of each other container's mounts
// and env, and the JSON of the webhook's own volumes and containers when the
// pod arrives with them), and buildPatch compares it with the mutated pod
// only where Apply writes. What the pod arrived without is added by one
// operation each, with its value encoded straight into the patch. An element
// that existed and changed is diffed on its own JSON, so that an update keeps
// the fine-grained operations that the whole-view diff made (a reinvocation
// adds the new env entries of the init container, and replaces nothing).
//
// Everything else of the pod passes through untouched: fields this webhook's
// API version does not know are in neither side of any comparison, so no
// operation removes them.

// patchSnapshot is what Apply may change of a pod, as the pod arrived.
type patchSnapshot struct {
	namespace string // as it arrived: before the handler fills it in
	status    string
	hasStatus bool
	withEnv   bool // the pod asks for variables: Apply edits app containers' env
	volumes   []volumeSnapshot
	lists     [2][]containerSnapshot // init containers, containers
}

type volumeSnapshot struct {
	name string
	json []byte // the whole volume, for the webhook's own volumes only
}

type containerSnapshot struct {
	name   string
	json   []byte // the whole container, for the webhook's own containers only
	mounts []corev1.VolumeMount
	env    []corev1.EnvVar // when withEnv
}

// containerLists are the JSON names of the lists in patchSnapshot.lists.
var containerLists = [2]string{"initContainers", "containers"}

func podLists(pod *corev1.Pod) [2][]corev1.Container {
	return [2][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers}
}

// takeSnapshot copies out of pod what Apply may overwrite. Apply replaces
// volume mounts and env entries by assignment, never through a pointer
// that the pod shares, so a shallow copy of each slice keeps them as they
// were.
func takeSnapshot(pod *corev1.Pod, arrivedNamespace string) (*patchSnapshot, error) {
	s := &patchSnapshot{namespace: arrivedNamespace, withEnv: asksForEnv(pod)}
	s.status, s.hasStatus = pod.Annotations[AnnotationStatus]
	s.volumes = make([]volumeSnapshot, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		s.volumes[i].name = v.Name
		if ownVolume(v.Name) {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("encoding volume %s as it arrived: %w", v.Name, err)
			}
			s.volumes[i].json = b
		}
	}
	for l, cs := range podLists(pod) {
		snaps := make([]containerSnapshot, len(cs))
		for i := range cs {
			c := &cs[i]
			snaps[i].name = c.Name
			if ownContainer(c.Name) {
				b, err := json.Marshal(c)
				if err != nil {
					return nil, fmt.Errorf("encoding container %s as it arrived: %w", c.Name, err)
				}
				snaps[i].json = b
				continue
			}
			snaps[i].mounts = cloneShallow(c.VolumeMounts)
			if s.withEnv {
				snaps[i].env = cloneShallow(c.Env)
			}
		}
		s.lists[l] = snaps
	}
	return s, nil
}

// cloneShallow copies a slice's elements (nil stays nil), without the
// spare capacity that slices.Clone may keep.
func cloneShallow[E any](s []E) []E {
	if s == nil {
		return nil
	}
	out := make([]E, len(s))
	copy(out, s)
	return out
}

// buildPatch returns the JSON patch that turns the pod as it arrived (the
// snapshot) into pod as Apply left it, and the number of its operations: nil
// and 0 when Apply changed nothing. Operations on what the pod arrived with
// come first, addressed as the pod arrived; the webhook's containers that it
// arrived without are added last, each at its index in the mutated pod (in
// increasing order, every container before it is then in place).
func (s *patchSnapshot) buildPatch(pod *corev1.Pod) ([]byte, int, error) {
	w := getPatchWriter()
	defer putPatchWriter(w)

	if s.namespace == "" && pod.Namespace != "" {
		w.op("add", "/metadata/namespace", pod.Namespace)
	}
	switch status, ok := pod.Annotations[AnnotationStatus]; {
	case !ok:
		return nil, 0, fmt.Errorf("computing the patch: the mutated pod has no %s annotation", AnnotationStatus)
	case !s.hasStatus:
		w.op("add", statusPath, status)
	case status != s.status:
		w.op("replace", statusPath, status)
	}

	if err := s.volumesPatch(w, pod.Spec.Volumes); err != nil {
		return nil, 0, err
	}
	var added []int // indexes in pod of the init containers the pod arrived without
	for l, cs := range podLists(pod) {
		a, err := s.containersPatch(w, l, cs)
		if err != nil {
			return nil, 0, err
		}
		if l == 0 {
			added = a
		} else if len(a) > 0 {
			return nil, 0, fmt.Errorf("computing the patch: container %s was added to spec.containers", cs[a[0]].Name)
		}
	}
	if len(added) > 0 {
		init := pod.Spec.InitContainers
		if !s.had(0, InitContainerName) && init[0].Name != InitContainerName {
			return nil, 0, fmt.Errorf("computing the patch: the added init container %s is not the first", InitContainerName)
		}
		// Into the existing list, or as a new list.
		if len(s.lists[0]) == 0 {
			w.op("add", "/spec/initContainers", init[:len(added)])
		} else {
			for _, i := range added {
				w.op("add", "/spec/initContainers/"+strconv.Itoa(i), &init[i])
			}
		}
	}
	return w.finish()
}

// statusPath is the JSON pointer of the status annotation ("/" is "~1").
var statusPath = "/metadata/annotations/" + strings.ReplaceAll(AnnotationStatus, "/", "~1")

func (s *patchSnapshot) had(list int, name string) bool {
	for i := range s.lists[list] {
		if s.lists[list][i].name == name {
			return true
		}
	}
	return false
}

// volumesPatch: the webhook's own volumes are diffed whole; every other
// volume must keep its name and place; new volumes are appended.
func (s *patchSnapshot) volumesPatch(w *patchWriter, vs []corev1.Volume) error {
	if len(vs) < len(s.volumes) {
		return fmt.Errorf("computing the patch: %d volumes became %d", len(s.volumes), len(vs))
	}
	for i := range s.volumes {
		before := &s.volumes[i]
		if vs[i].Name != before.name {
			return fmt.Errorf("computing the patch: volume %d, %s, became %s", i, before.name, vs[i].Name)
		}
		if before.json != nil {
			if err := w.diff("/spec/volumes/"+strconv.Itoa(i), before.json, &vs[i]); err != nil {
				return err
			}
		}
	}
	appendElements(w, "/spec/volumes", len(s.volumes), vs)
	return nil
}

// containersPatch writes the operations on the containers of list l that
// the pod arrived with, and returns the indexes of the webhook's own
// containers that it arrived without (only those may be added).
func (s *patchSnapshot) containersPatch(w *patchWriter, l int, cs []corev1.Container) ([]int, error) {
	var added []int
	before := s.lists[l]
	prefix := "/spec/" + containerLists[l] + "/"
	at := 0 // index in before of the next container that the pod arrived with
	for i := range cs {
		c := &cs[i]
		if ownContainer(c.Name) && !s.had(l, c.Name) {
			added = append(added, i)
			continue
		}
		if at == len(before) || before[at].name != c.Name {
			return nil, fmt.Errorf("computing the patch: spec.%s[%d] is %s, not the container the pod arrived with there", containerLists[l], i, c.Name)
		}
		b := &before[at]
		path := prefix + strconv.Itoa(at)
		at++
		if b.json != nil {
			if err := w.diff(path, b.json, c); err != nil {
				return nil, err
			}
			continue
		}
		if err := elementsPatch(w, path+"/volumeMounts", b.mounts, c.VolumeMounts, sameMount); err != nil {
			return nil, err
		}
		if s.withEnv {
			if err := elementsPatch(w, path+"/env", b.env, c.Env, sameEnv); err != nil {
				return nil, err
			}
		}
	}
	if at != len(before) {
		return nil, fmt.Errorf("computing the patch: spec.%s lost containers", containerLists[l])
	}
	return added, nil
}

// elementsPatch writes the operations that turn list before into after,
// which Apply only updates in place or appends to.
// An element is unchanged when same says it is the copy as it was: Apply
// replaces the pointers and slices of an element it changes (an env entry's
// valueFrom) rather than write through them, so one left alone still holds
// the same ones. One that is not the same is compared on its JSON (diff),
// which finds no operation when Apply rewrote it with what it held.
func elementsPatch[E any](w *patchWriter, path string, before, after []E, same func(a, b *E) bool) error {
	if len(after) < len(before) {
		return fmt.Errorf("computing the patch: %s: %d elements became %d", path, len(before), len(after))
	}
	for j := range before {
		if same(&before[j], &after[j]) {
			continue
		}
		b, err := json.Marshal(&before[j])
		if err != nil {
			return fmt.Errorf("computing the patch: encoding %s/%d as it arrived: %w", path, j, err)
		}
		if err := w.diff(path+"/"+strconv.Itoa(j), b, &after[j]); err != nil {
			return err
		}
	}
	appendElements(w, path, len(before), after)
	return nil
}

// sameMount and sameEnv report whether an element holds the same values,
// pointers and slices as its shallow copy.
func sameMount(a, b *corev1.VolumeMount) bool {
	return a.Name == b.Name && a.ReadOnly == b.ReadOnly && a.RecursiveReadOnly == b.RecursiveReadOnly &&
		a.MountPath == b.MountPath && a.SubPath == b.SubPath && a.MountPropagation == b.MountPropagation &&
		a.SubPathExpr == b.SubPathExpr && sameSlice(a.BindMountOptions, b.BindMountOptions)
}

func sameEnv(a, b *corev1.EnvVar) bool {
	return a.Name == b.Name && a.Value == b.Value && a.ValueFrom == b.ValueFrom
}

// sameSlice reports whether two slices are the same one (or both empty).
func sameSlice[E any](a, b []E) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// appendElements adds after[n:], the elements appended to a list of n: the
// list whole when it was empty (it may be absent from the pod's JSON), else
// one operation each, at its index.
func appendElements[E any](w *patchWriter, path string, n int, after []E) {
	switch {
	case len(after) == n:
	case n == 0:
		w.op("add", path, after)
	default:
		for j := n; j < len(after); j++ {
			w.op("add", path+"/"+strconv.Itoa(j), &after[j])
		}
	}
}

// patchWriter encodes a JSON patch, operation by operation, into a buffer
// reused across requests.
type patchWriter struct {
	buf bytes.Buffer
	enc *json.Encoder
	n   int
	err error
}

var patchWriters = sync.Pool{New: func() any {
	w := &patchWriter{}
	w.enc = json.NewEncoder(&w.buf)
	return w
}}

func getPatchWriter() *patchWriter {
	w := patchWriters.Get().(*patchWriter)
	w.buf.Reset()
	w.n, w.err = 0, nil
	return w
}

// maxPooledPatch keeps the buffer of an unusually large patch out of the
// pool, so that one such request does not hold its memory for good.
const maxPooledPatch = 64 << 10

func putPatchWriter(w *patchWriter) {
	if w.buf.Cap() <= maxPooledPatch {
		patchWriters.Put(w)
	}
}

// op appends one operation with a value.
func (w *patchWriter) op(op, path string, value any) {
	if !w.start(op, path) {
		return
	}
	w.buf.WriteString(`,"value":`)
	// Encode writes the value straight into the buffer (and a newline,
	// which is JSON whitespace).
	if err := w.enc.Encode(value); err != nil {
		w.err = fmt.Errorf("computing the patch: encoding the value of %s %s: %w", op, path, err)
	}
	w.buf.WriteByte('}')
}

// remove appends a remove operation.
func (w *patchWriter) remove(path string) {
	if w.start("remove", path) {
		w.buf.WriteByte('}')
	}
}

// start writes an operation's op and path, and reports false after an
// error.
func (w *patchWriter) start(op, path string) bool {
	if w.err != nil {
		return false
	}
	if w.n == 0 {
		w.buf.WriteByte('[')
	} else {
		w.buf.WriteByte(',')
	}
	w.n++
	w.buf.WriteString(`{"op":"`)
	w.buf.WriteString(op)
	w.buf.WriteString(`","path":`)
	if plainJSON(path) {
		w.buf.WriteByte('"')
		w.buf.WriteString(path)
		w.buf.WriteByte('"')
	} else if err := w.enc.Encode(path); err != nil {
		// The paths built here are plain; one from a map key that
		// jsonpatch.CreatePatch found may hold anything.
		w.err = fmt.Errorf("computing the patch: encoding the path %q: %w", path, err)
		return false
	}
	return true
}

// plainJSON reports whether s is written in JSON as it is, between quotes:
// printable ASCII without '"' and '\', nor the characters that
// encoding/json escapes for HTML.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// diff appends the operations that turn before (JSON) into after at path:
// none when they encode the same. This is the whole-view diff of old,
// scoped to one element that the pod arrived with and that Apply updates.
func (w *patchWriter) diff(path string, before []byte, after any) error {
	a, err := json.Marshal(after)
	if err != nil {
		return fmt.Errorf("computing the patch: encoding %s: %w", path, err)
	}
	if bytes.Equal(before, a) {
		return nil
	}
	ops, err := jsonpatch.CreatePatch(before, a)
	if err != nil {
		return fmt.Errorf("computing the patch: %s: %w", path, err)
	}
	for _, o := range ops {
		// A remove is possible here: the init container is rebuilt whole,
		// so what a pod declared in one of that name does not survive.
		if o.Operation == "remove" {
			w.remove(path + o.Path)
			continue
		}
		w.op(o.Operation, path+o.Path, o.Value)
	}
	return nil
}

// finish returns a copy of the patch, sized to fit, and its number of
// operations.
func (w *patchWriter) finish() ([]byte, int, error) {
	if w.err != nil {
		return nil, 0, w.err
	}
	if w.n == 0 {
		return nil, 0, nil
	}
	w.buf.WriteByte(']')
	return bytes.Clone(w.buf.Bytes()), w.n, nil
}

// asksForEnv reports whether the pod has an env-<name> annotation, the only
// case in which Apply edits the env of containers other than its own.
// Copying and comparing every container's env would cost every pod for the
// few that ask for variables. The annotations are the same before and after
// Apply.
func asksForEnv(pod *corev1.Pod) bool {
	for k := range pod.Annotations {
		if strings.HasPrefix(k, EnvPrefix) {
			return true
		}
	}
	return false
}

// ownContainer reports whether name is one of the webhook's containers: the
// init container or the refresh sidecar.
func ownContainer(name string) bool {
	return name == InitContainerName || name == RefreshContainerName
}

// ownVolume reports whether name is one of the webhook's volumes: the
// secrets volume or the env file volume.
func ownVolume(name string) bool {
	return name == VolumeName || name == EnvVolumeName
}
