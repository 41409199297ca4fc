package main

// The "lifecycle" op: the work lifecycle `ocm-ce bench` runs (crates/ocm-ce-cli/src/lifecycle.rs),
// driven from inside this source so that its CPU and memory are the Go source's own: create every
// work (a ConfigMap of `manifestBytes` and a Deployment, resource version 1) and wait until each is
// reported Applied, update every `updateEvery`-th work (resource version 2) and wait until each
// update is reported Applied (observedGeneration >= 2: the agent must report the applied resource
// version, go-agent --observe-resource-version), delete every work and wait until each deletion is
// acknowledged (the Deleted status).
//
// Completion is seen where the source client hands a received status to its store
// (HandleReceivedWork), not on the store's watch: sdk-go v0.15.0's SourceLocalWatcherStore stalls
// its watch for about a second after every DELETED event, which would measure that stall instead of
// the protocol.

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubetypes "k8s.io/apimachinery/pkg/types"

	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/utils"

	"github.com/ocm-ce/interop/common/wire"
)

// lifecyclePlan is the "lifecycle" field of the op.
type lifecyclePlan struct {
	Clusters       []string `json:"clusters"`
	Works          int      `json:"works"` // per cluster
	ManifestBytes  int      `json:"manifestBytes"`
	UpdateEvery    int      `json:"updateEvery"` // 0 = no update
	TimeoutSeconds float64  `json:"timeoutSeconds"`
}

// lifecycleSummary has the keys of ocm-ce bench's JSON summary.
type lifecycleSummary struct {
	WorksCreated     int     `json:"works_created"`
	WorksUpdated     int     `json:"works_updated"`
	WorksDeleted     int     `json:"works_deleted"`
	StatusesReceived int     `json:"statuses_received"`
	P50ms            float64 `json:"p50_ms"`
	P99ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	WorksPerSec      float64 `json:"works_per_sec"`
	ElapsedS         float64 `json:"elapsed_s"`
	Complete         bool    `json:"complete"`
	ApplyS           float64 `json:"apply_s"`         // create every work until all are Applied
	UpdateS          float64 `json:"update_s"`        // update until all updates are Applied
	DeleteS          float64 `json:"delete_s"`        // delete until every deletion is acknowledged
	Phase            string  `json:"phase,omitempty"` // where an incomplete run stopped
	Pending          int     `json:"pending,omitempty"`
}

// tracker sees every status the source receives and tells the lifecycle when all the works it
// waits for reached their goal.
type tracker struct {
	mu       sync.Mutex
	statuses int
	// uid -> goal: Applied at this resource version (> 0), or deleted (0).
	waiting   map[string]int64
	createdAt map[string]time.Time
	latencies []float64
	done      chan struct{}
	base      int // statuses when the current run started
}

func newTracker() *tracker {
	return &tracker{waiting: map[string]int64{}, createdAt: map[string]time.Time{}}
}

// received is called for every status the source client decodes.
func (t *tracker) received(w *workv1.ManifestWork) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.statuses++
	uid := string(w.UID)
	goal, ok := t.waiting[uid]
	if !ok {
		return
	}
	reached := false
	if goal == 0 {
		reached = meta.IsStatusConditionTrue(w.Status.Conditions, common.ManifestsDeleted)
	} else if c := meta.FindStatusCondition(w.Status.Conditions, workv1.WorkApplied); c != nil &&
		c.Status == metav1.ConditionTrue && c.ObservedGeneration >= goal {
		reached = true
		if at, ok := t.createdAt[uid]; ok {
			t.latencies = append(t.latencies, float64(time.Since(at).Microseconds())/1000)
			delete(t.createdAt, uid)
		}
	}
	if reached {
		delete(t.waiting, uid)
		if len(t.waiting) == 0 && t.done != nil {
			close(t.done)
			t.done = nil
		}
	}
}

// expect starts waiting for uid to reach goal (before the request goes out: its answer can
// arrive before the request returns).
func (t *tracker) expect(uid string, goal int64, created bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = make(chan struct{})
	}
	t.waiting[uid] = goal
	if created {
		t.createdAt[uid] = time.Now()
	}
}

// wait blocks until nothing is awaited or the deadline passes; it returns how many are left.
func (t *tracker) wait(deadline time.Time) int {
	t.mu.Lock()
	done := t.done
	left := len(t.waiting)
	t.mu.Unlock()
	if left == 0 || done == nil {
		return 0
	}
	select {
	case <-done:
		return 0
	case <-time.After(time.Until(deadline)):
		t.mu.Lock()
		defer t.mu.Unlock()
		return len(t.waiting)
	}
}

func bundle(cluster, name string, bytes int, version int) *workv1.ManifestWork {
	if bytes < 1 {
		bytes = 1
	}
	data := make([]byte, bytes)
	for i := range data {
		data[i] = 'x'
	}
	cm, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name + "-config", "namespace": "default"},
		"data":     map[string]any{"payload": string(data), "version": fmt.Sprint(version)},
	})
	deploy, _ := json.Marshal(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"replicas": 1, "selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.example/app:1"}}}}},
	})
	return &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cluster,
			Annotations: map[string]string{common.CloudEventsResourceVersionAnnotationKey: fmt.Sprint(version)},
		},
		Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{
			{RawExtension: runtime.RawExtension{Raw: cm}}, {RawExtension: runtime.RawExtension{Raw: deploy}},
		}}},
	}
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// lifecycle runs plan; an error is a request that failed, a timeout is an incomplete summary.
func (s *source) lifecycle(plan lifecyclePlan) (*lifecycleSummary, error) {
	if s.tracker == nil {
		return nil, fmt.Errorf("the lifecycle op needs --client-mode manual")
	}
	t := s.tracker
	started := time.Now()
	phase := started
	lap := func(into *float64) {
		*into = time.Since(phase).Seconds()
		phase = time.Now()
	}
	timeout := time.Duration(plan.TimeoutSeconds * float64(time.Second))
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	deadline := started.Add(timeout)
	type key struct{ cluster, name, uid string }
	var works []key
	for _, c := range plan.Clusters {
		for i := 0; i < plan.Works; i++ {
			name := fmt.Sprintf("work-%d", i)
			works = append(works, key{c, name, utils.UID(s.sourceID, c, name)})
		}
	}
	sum := &lifecycleSummary{WorksCreated: len(works), WorksDeleted: len(works)}
	finish := func(phase string, pending int) *lifecycleSummary {
		elapsed := time.Since(started).Seconds()
		t.mu.Lock()
		lat := append([]float64{}, t.latencies...)
		sum.StatusesReceived = t.statuses - t.base
		t.mu.Unlock()
		sort.Float64s(lat)
		sum.P50ms, sum.P99ms = percentile(lat, 50), percentile(lat, 99)
		if len(lat) > 0 {
			sum.MaxMs = lat[len(lat)-1]
		}
		sum.ElapsedS = elapsed
		sum.WorksPerSec = float64(len(works)) / elapsed
		sum.Complete = pending == 0
		if pending > 0 {
			sum.Phase, sum.Pending = phase, pending
		}
		return sum
	}
	t.mu.Lock()
	t.latencies = nil
	t.base = t.statuses
	t.mu.Unlock()

	for _, w := range works {
		t.expect(w.uid, 1, true)
		if _, err := s.works(w.cluster).Create(s.ctx, bundle(w.cluster, w.name, plan.ManifestBytes, 1), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create %s/%s: %w", w.cluster, w.name, err)
		}
	}
	left := t.wait(deadline)
	lap(&sum.ApplyS)
	if left > 0 {
		return finish("apply", left), nil
	}
	if plan.UpdateEvery > 0 {
		for i := 0; i < len(works); i += plan.UpdateEvery {
			w := works[i]
			patch, _ := json.Marshal(map[string]any{
				"metadata": map[string]any{"annotations": map[string]any{common.CloudEventsResourceVersionAnnotationKey: "2"}},
				"spec":     map[string]any{"workload": map[string]any{"manifests": bundle(w.cluster, w.name, plan.ManifestBytes, 2).Spec.Workload.Manifests}},
			})
			t.expect(w.uid, 2, false)
			if _, err := s.works(w.cluster).Patch(s.ctx, w.name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return nil, fmt.Errorf("patch %s/%s: %w", w.cluster, w.name, err)
			}
			sum.WorksUpdated++
		}
		left := t.wait(deadline)
		lap(&sum.UpdateS)
		if left > 0 {
			return finish("update", left), nil
		}
	}
	for _, w := range works {
		t.expect(w.uid, 0, false)
		if err := s.works(w.cluster).Delete(s.ctx, w.name, metav1.DeleteOptions{}); err != nil {
			return nil, fmt.Errorf("delete %s/%s: %w", w.cluster, w.name, err)
		}
	}
	left = t.wait(deadline)
	lap(&sum.DeleteS)
	if left > 0 {
		return finish("delete", left), nil
	}
	return finish("", 0), nil
}

// runLifecycle answers the op.
func (s *source) runLifecycle(cmd *wire.Command) {
	var plan lifecyclePlan
	if err := json.Unmarshal(cmd.Lifecycle, &plan); err != nil || len(plan.Clusters) == 0 || plan.Works < 1 {
		wire.Reply(cmd, fmt.Errorf("invalid lifecycle plan (clusters, works): %v", err), nil, nil)
		return
	}
	sum, err := s.lifecycle(plan)
	id := cmd.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	line := map[string]any{"event": "result", "id": id, "op": cmd.Op, "ok": err == nil}
	if err != nil {
		line["error"] = err.Error()
	} else {
		line["summary"] = sum
	}
	wire.Emit(line)
}
