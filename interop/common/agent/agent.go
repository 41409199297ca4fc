// Package agent holds the behaviour of the interop work agent: a tiny
// stand-in for the OCM work agent's controllers, written against the public
// ManifestWork client/informer API only, so that the same source file builds
// against different sdk-go releases: the go (v0.15.0) and go-latest (v1.3.0) modules both use it.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1lister "open-cluster-management.io/api/client/work/listers/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Emitter writes one JSON line to stdout.
type Emitter func(v any)

// Agent reconciles the ManifestWorks of one cluster.
type Agent struct {
	Cluster string
	Works   func(namespace string) workv1client.ManifestWorkInterface
	Lister  workv1lister.ManifestWorkLister
	Emit    Emitter
	// ObserveResourceVersion reports the work's resource version as the observedGeneration of
	// its conditions when the work has no generation (sdk-go v0.15.0 agent-side works), as the
	// ocm-ce agent does, so that a source sees which spec was applied.
	ObserveResourceVersion bool

	// mu serialises every read-modify-write of a work (reconcile and
	// set_condition), and each holder of mu waits until the informer cache
	// shows its own write before releasing it.
	mu          sync.Mutex
	queue       workqueue.RateLimitingInterface
	lastApplied map[string]string // uid -> spec hash last reported as applied

	// changed is closed (and replaced) whenever the informer reports a change, so that waitCache
	// wakes as soon as the cache may show a write instead of on its next poll.
	changedMu sync.Mutex
	changed   chan struct{}
}

// New returns an agent; call Handlers() before starting the informer.
func New(cluster string, works func(string) workv1client.ManifestWorkInterface, lister workv1lister.ManifestWorkLister, emit Emitter) *Agent {
	return &Agent{
		Cluster: cluster, Works: works, Lister: lister, Emit: emit,
		queue:       workqueue.NewNamedRateLimitingQueue(workqueue.DefaultControllerRateLimiter(), "interop-agent"),
		lastApplied: map[string]string{},
		changed:     make(chan struct{}),
	}
}

// notify wakes every waitCache.
func (a *Agent) notify() {
	a.changedMu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.changedMu.Unlock()
}

func (a *Agent) changes() <-chan struct{} {
	a.changedMu.Lock()
	defer a.changedMu.Unlock()
	return a.changed
}

// Handlers returns the informer event handlers that enqueue works.
func (a *Agent) Handlers() cache.ResourceEventHandler {
	enqueue := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			klog.Errorf("key: %v", err)
			return
		}
		a.queue.Add(key)
		a.notify()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
}

// Run processes the queue until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	for {
		item, shutdown := a.queue.Get()
		if shutdown {
			return
		}
		key := item.(string)
		err := a.reconcile(ctx, key)
		if err != nil {
			klog.Warningf("reconcile %s: %v (requeued)", key, err)
			a.queue.AddRateLimited(key)
		} else {
			a.queue.Forget(key)
		}
		a.queue.Done(item)
	}
}

func (a *Agent) reconcile(ctx context.Context, key string) error {
	a.mu.Lock()
	defer a.mu.Unlock()

	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	w, err := a.Lister.ManifestWorks(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}

	if !w.DeletionTimestamp.IsZero() {
		if len(w.Finalizers) == 0 {
			return nil
		}
		// "clean up" (nothing to do here) and remove the finalizers: the SDK
		// then publishes the Deleted status and drops the work.
		if _, err := a.Works(ns).Patch(ctx, name, kubetypes.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("remove finalizers: %w", err)
		}
		delete(a.lastApplied, string(w.UID))
		a.Emit(map[string]any{"event": "deleted", "name": name, "namespace": ns, "uid": string(w.UID)})
		a.waitCache(ns, name, func(cur *workv1.ManifestWork, exists bool) bool { return !exists })
		return nil
	}

	if !hasString(w.Finalizers, workv1.ManifestWorkFinalizer) {
		finalizers := append(append([]string{}, w.Finalizers...), workv1.ManifestWorkFinalizer)
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": finalizers}})
		patched, err := a.Works(ns).Patch(ctx, name, kubetypes.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("add finalizer: %w", err)
		}
		a.waitCache(ns, name, func(cur *workv1.ManifestWork, exists bool) bool {
			return !exists || hasString(cur.Finalizers, workv1.ManifestWorkFinalizer)
		})
		w = patched
	}

	specHash := hashSpec(&w.Spec)
	if a.lastApplied[string(w.UID)] != specHash {
		a.lastApplied[string(w.UID)] = specHash
		manifests := make([]json.RawMessage, 0, len(w.Spec.Workload.Manifests))
		for _, m := range w.Spec.Workload.Manifests {
			manifests = append(manifests, rawManifest(m))
		}
		a.Emit(map[string]any{
			"event": "applied", "name": name, "namespace": ns, "uid": string(w.UID),
			"resourceVersion": w.ResourceVersion, "generation": w.Generation, "manifests": manifests,
		})
	}

	desired := desiredStatus(w, a.observedGeneration(w))
	if equality.Semantic.DeepEqual(w.Status, *desired) {
		return nil
	}
	return a.patchStatus(ctx, w, desired)
}

func (a *Agent) patchStatus(ctx context.Context, w *workv1.ManifestWork, status *workv1.ManifestWorkStatus) error {
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	patched, err := a.Works(w.Namespace).Patch(ctx, w.Name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	a.waitCache(w.Namespace, w.Name, func(cur *workv1.ManifestWork, exists bool) bool {
		return !exists || equality.Semantic.DeepEqual(cur.Status, patched.Status)
	})
	return nil
}

// SetCondition adds or updates a top-level status condition of the work
// named name (the agent-side name is the work UID) with a status patch.
func (a *Agent) SetCondition(ctx context.Context, name string, cond metav1.Condition) (*workv1.ManifestWork, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	name = w.Name
	status := w.Status.DeepCopy()
	cond.ObservedGeneration = w.Generation
	meta.SetStatusCondition(&status.Conditions, cond)
	if equality.Semantic.DeepEqual(w.Status, *status) {
		return w, nil
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": status.Conditions}})
	if err != nil {
		return nil, err
	}
	patched, err := a.Works(a.Cluster).Patch(ctx, name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, err
	}
	a.waitCache(a.Cluster, name, func(cur *workv1.ManifestWork, exists bool) bool {
		return !exists || equality.Semantic.DeepEqual(cur.Status, patched.Status)
	})
	return patched, nil
}

// resolve finds a work of the cluster by name, or else by UID (sdk-go v0.15.0
// names agent-side works by their UID; newer releases keep the source's name
// when the spec event carries the "metadata" extension).
func (a *Agent) resolve(nameOrUID string) (*workv1.ManifestWork, error) {
	w, err := a.Lister.ManifestWorks(a.Cluster).Get(nameOrUID)
	if err == nil || !apierrors.IsNotFound(err) {
		return w, err
	}
	works, lerr := a.Lister.ManifestWorks(a.Cluster).List(labels.Everything())
	if lerr != nil {
		return nil, lerr
	}
	for _, cand := range works {
		if string(cand.UID) == nameOrUID {
			return cand, nil
		}
	}
	return nil, err
}

// List returns the works of the cluster sorted by name.
func (a *Agent) List() ([]*workv1.ManifestWork, error) {
	works, err := a.Lister.ManifestWorks(a.Cluster).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if works == nil {
		works = []*workv1.ManifestWork{}
	}
	sort.Slice(works, func(i, j int) bool { return works[i].Name < works[j].Name })
	return works, nil
}

// waitCache waits (bounded) until the informer cache satisfies cond, so that
// the next read under a.mu sees this agent's own write. It checks again on every
// informer event (and every 5 ms).
func (a *Agent) waitCache(ns, name string, cond func(*workv1.ManifestWork, bool) bool) {
	deadline := time.After(5 * time.Second)
	for {
		changed := a.changes()
		cur, err := a.Lister.ManifestWorks(ns).Get(name)
		if apierrors.IsNotFound(err) {
			if cond(nil, false) {
				return
			}
		} else if err == nil && cond(cur, true) {
			return
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			return
		}
	}
}

// observedGeneration is what the status reports as the generation applied.
func (a *Agent) observedGeneration(w *workv1.ManifestWork) int64 {
	if w.Generation == 0 && a.ObserveResourceVersion {
		if rv, err := strconv.ParseInt(w.ResourceVersion, 10, 64); err == nil {
			return rv
		}
	}
	return w.Generation
}

func desiredStatus(w *workv1.ManifestWork, gen int64) *workv1.ManifestWorkStatus {
	status := w.Status.DeepCopy()
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: workv1.WorkApplied, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: "AppliedManifestWorkComplete", Message: "Apply manifest work complete",
	})
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: workv1.WorkAvailable, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: "ResourcesAvailable", Message: "All resources are available",
	})

	existing := map[workv1.ManifestResourceMeta]workv1.ManifestCondition{}
	for _, mc := range w.Status.ResourceStatus.Manifests {
		existing[mc.ResourceMeta] = mc
	}
	manifests := make([]workv1.ManifestCondition, 0, len(w.Spec.Workload.Manifests))
	for i, m := range w.Spec.Workload.Manifests {
		rm := resourceMeta(int32(i), m)
		mc, ok := existing[rm]
		if !ok {
			mc = workv1.ManifestCondition{ResourceMeta: rm, Conditions: []metav1.Condition{}}
		}
		mc = *mc.DeepCopy()
		mc.StatusFeedbacks = workv1.StatusFeedbackResult{}
		meta.SetStatusCondition(&mc.Conditions, metav1.Condition{
			Type: workv1.ManifestApplied, Status: metav1.ConditionTrue, ObservedGeneration: gen,
			Reason: "AppliedManifestComplete", Message: "Apply manifest complete",
		})
		meta.SetStatusCondition(&mc.Conditions, metav1.Condition{
			Type: workv1.ManifestAvailable, Status: metav1.ConditionTrue, ObservedGeneration: gen,
			Reason: "ResourceAvailable", Message: "Resource is available",
		})
		manifests = append(manifests, mc)
	}
	status.ResourceStatus.Manifests = manifests
	return status
}

func resourceMeta(ordinal int32, m workv1.Manifest) workv1.ManifestResourceMeta {
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(rawManifest(m), &obj)
	gv, _ := schema.ParseGroupVersion(obj.APIVersion)
	return workv1.ManifestResourceMeta{
		Ordinal: ordinal, Group: gv.Group, Version: gv.Version, Kind: obj.Kind,
		Resource: pluralGuess(obj.Kind), Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace,
	}
}

// pluralGuess lower-cases and pluralises a kind the way the unsafe guesser of
// apimachinery does (ConfigMap -> configmaps, Policy -> policies, Ingress -> ingresses).
func pluralGuess(kind string) string {
	if kind == "" {
		return ""
	}
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"), strings.HasSuffix(k, "z"),
		strings.HasSuffix(k, "ch"), strings.HasSuffix(k, "sh"):
		return k + "es"
	case strings.HasSuffix(k, "y") && len(k) > 1 && !strings.ContainsRune("aeiou", rune(k[len(k)-2])):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

func rawManifest(m workv1.Manifest) json.RawMessage {
	if len(m.Raw) > 0 {
		return json.RawMessage(m.Raw)
	}
	if m.Object != nil {
		if b, err := json.Marshal(m.Object); err == nil {
			return b
		}
	}
	return json.RawMessage("null")
}

func hashSpec(spec *workv1.ManifestWorkSpec) string {
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
