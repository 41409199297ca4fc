// go-source is a ManifestWork source built on the Go sdk-go v0.15.0 CloudEvents
// work client. It is driven through JSON lines on stdin and reports JSON lines
// on stdout (see ../../README.md). Logs go to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cloudeventstypes "github.com/cloudevents/sdk-go/v2/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"

	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work"
	sourceclient "open-cluster-management.io/sdk-go/pkg/cloudevents/work/source/client"
	sourcecodec "open-cluster-management.io/sdk-go/pkg/cloudevents/work/source/codec"
	sourcelister "open-cluster-management.io/sdk-go/pkg/cloudevents/work/source/lister"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/store"

	"github.com/ocm-ce/interop/common/wire"
)

// reportingCodec wraps the source ManifestBundleCodec and reports every status
// event it decodes.
type reportingCodec struct {
	*sourcecodec.ManifestBundleCodec
	quiet bool
}

var _ generic.Codec[*workv1.ManifestWork] = &reportingCodec{}

func (c *reportingCodec) Decode(evt *cloudevents.Event) (*workv1.ManifestWork, error) {
	line := map[string]any{
		"event":      "status_event",
		"type":       evt.Type(),
		"resourceid": extString(evt, types.ExtensionResourceID),
		"sequenceid": extString(evt, types.ExtensionStatusUpdateSequenceID),
	}
	w, err := c.ManifestBundleCodec.Decode(evt)
	if err != nil {
		line["error"] = err.Error()
	}
	if !c.quiet || err != nil {
		wire.Emit(line)
	}
	return w, err
}

func extString(evt *cloudevents.Event, name string) string {
	v, ok := evt.Extensions()[name]
	if !ok {
		return ""
	}
	s, err := cloudeventstypes.ToString(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return s
}

type watchLine struct {
	Event           string                    `json:"event"`
	Type            watch.EventType           `json:"type"`
	Namespace       string                    `json:"namespace"`
	Name            string                    `json:"name"`
	UID             kubetypes.UID             `json:"uid"`
	ResourceVersion string                    `json:"resourceVersion"`
	Status          workv1.ManifestWorkStatus `json:"status"`
	StatusHash      string                    `json:"statusHash"`
}

type source struct {
	ctx       context.Context
	config    any
	clientID  string
	sourceID  string
	stateFile string
	mode      string
	resyncOn  bool
	rateLimit options.EventRateLimit
	quiet     bool

	// manual mode: sees every received status (the lifecycle op)
	tracker *tracker

	store *store.SourceLocalWatcherStore
	codec *reportingCodec

	// holder mode
	holder *work.ClientHolder

	// manual mode: the single generic client and the work client built on it
	generic    *generic.CloudEventSourceClient[*workv1.ManifestWork]
	workClient *sourceclient.ManifestWorkSourceClient

	// holder mode: a resync-only generic client, built on first use
	resyncOnce   sync.Once
	resyncClient *generic.CloudEventSourceClient[*workv1.ManifestWork]
	resyncErr    error

	stateMu sync.Mutex
}

func main() {
	var (
		transport  = flag.String("transport", "mqtt", "transport: mqtt|grpc|kafka")
		configFile = flag.String("config", "", "sdk-go config file (YAML/JSON) for the transport")
		sourceID   = flag.String("source-id", "", "source ID")
		clientID   = flag.String("client-id", "", "client ID (MQTT client identifier)")
		stateFile  = flag.String("state-file", "", "JSON file holding the source's works; read at start, kept updated")
		mode       = flag.String("client-mode", "holder", "holder: ClientHolderBuilder + a resync-only generic client; manual: one generic client wired like the builder")
		resync     = flag.Bool("resync", true, "status resync (all clusters) after start and on reconnect (ClientHolderBuilder.WithResyncEnabled)")
		qps        = flag.Float64("qps", 0, "publish rate limit, events/s (0 = the SDK's default, 50; needs --client-mode manual when set)")
		burst      = flag.Int("burst", 0, "publish burst (0 = the SDK's default, 100)")
		quiet      = flag.Bool("quiet", false, "print no status_event and watch lines (benchmarks)")
	)
	klog.InitFlags(nil)
	flag.Parse()

	limit := options.EventRateLimit{QPS: float32(*qps), Burst: *burst}
	if err := run(*transport, *configFile, *sourceID, *clientID, *stateFile, *mode, *resync, limit, *quiet); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Errorf("go-source: %v", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(transport, configFile, sourceID, clientID, stateFile, mode string, resync bool, limit options.EventRateLimit, quiet bool) error {
	if configFile == "" || sourceID == "" || clientID == "" {
		return fmt.Errorf("--config, --source-id and --client-id are required")
	}
	if mode != "holder" && mode != "manual" {
		return fmt.Errorf("unknown --client-mode %q", mode)
	}
	if mode == "holder" && (limit.QPS > 0 || limit.Burst > 0) {
		return fmt.Errorf("--qps and --burst need --client-mode manual (the ClientHolderBuilder has no rate limit option)")
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	_, config, err := generic.NewConfigLoader(transport, configFile).LoadConfig()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}

	s := &source{
		ctx: ctx, config: config, clientID: clientID, sourceID: sourceID, stateFile: stateFile, mode: mode, resyncOn: resync,
		rateLimit: limit, quiet: quiet,
		codec: &reportingCodec{ManifestBundleCodec: sourcecodec.NewManifestBundleCodec(), quiet: quiet},
	}

	s.store, err = store.NewSourceLocalWatcherStore(ctx, s.listLocalWorks)
	if err != nil {
		return fmt.Errorf("create store: %w", err)
	}

	if mode == "holder" {
		s.holder, err = work.NewClientHolderBuilder(config).
			WithClientID(clientID).
			WithSourceID(sourceID).
			WithCodecs(s.codec).
			WithWorkClientWatcherStore(s.store).
			WithResyncEnabled(resync).
			NewSourceClientHolder(ctx)
		if err != nil {
			return fmt.Errorf("build source client holder: %w", err)
		}
	} else if err := s.buildManual(); err != nil {
		return err
	}

	watcher, err := s.works("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.consumeWatch(watcher)
	}()

	wire.Emit(map[string]string{"event": "ready"})

	quit := make(chan struct{})
	go func() {
		wire.ReadCommands(os.Stdin, func(cmd *wire.Command) bool {
			if cmd.Op == "quit" {
				wire.Reply(cmd, nil, nil, nil)
				return false
			}
			s.handle(cmd)
			return true
		})
		close(quit)
	}()

	select {
	case <-quit:
	case <-ctx.Done():
	}
	s.writeState()
	cancel()
	return nil
}

// buildManual wires one generic source client exactly as
// work.ClientHolderBuilder.NewSourceClientHolder does (sdk-go v0.15.0), keeping
// the generic client so that Resync can be called on it.
func (s *source) buildManual() error {
	options, err := generic.BuildCloudEventsSourceOptions(s.config, s.clientID, s.sourceID)
	if err != nil {
		return fmt.Errorf("build source options: %w", err)
	}
	options.EventRateLimit = s.rateLimit
	s.generic, err = generic.NewCloudEventSourceClient[*workv1.ManifestWork](
		s.ctx, options, sourcelister.NewWatcherStoreLister(s.store), work.ManifestWorkStatusHash, s.codec)
	if err != nil {
		return fmt.Errorf("create cloudevents source client: %w", err)
	}
	s.tracker = newTracker()
	s.generic.Subscribe(s.ctx, func(action types.ResourceAction, w *workv1.ManifestWork) error {
		err := s.store.HandleReceivedWork(action, w)
		s.tracker.received(w)
		return err
	})
	s.workClient = sourceclient.NewManifestWorkSourceClient(s.sourceID, s.generic, s.store)

	go func() {
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-s.generic.ReconnectedChan():
				if !s.resyncOn {
					continue
				}
				if err := s.generic.Resync(s.ctx, types.ClusterAll); err != nil {
					klog.Errorf("failed to send resync request, %v", err)
				}
			}
		}
	}()
	if !s.resyncOn {
		return nil
	}
	go func() {
		if store.WaitForStoreInit(s.ctx, s.store.HasInitiated) {
			if err := s.generic.Resync(s.ctx, types.ClusterAll); err != nil {
				klog.Errorf("failed to send resync request, %v", err)
			}
		}
	}()
	return nil
}

func (s *source) works(namespace string) workv1client.ManifestWorkInterface {
	if s.holder != nil {
		return s.holder.ManifestWorks(namespace)
	}
	s.workClient.SetNamespace(namespace)
	return s.workClient
}

func (s *source) resync(cluster string) error {
	if s.generic != nil {
		return s.generic.Resync(s.ctx, cluster)
	}
	// The ClientHolder does not expose its generic client. Build a second
	// generic source client the way the builder does (same config, source ID,
	// lister over the same store, status hash and codec) but never subscribe
	// it: it only publishes the status resync request; the answers arrive on
	// the holder's subscription. Its client ID is <client-id>-resync.
	s.resyncOnce.Do(func() {
		options, err := generic.BuildCloudEventsSourceOptions(s.config, s.clientID+"-resync", s.sourceID)
		if err != nil {
			s.resyncErr = err
			return
		}
		s.resyncClient, s.resyncErr = generic.NewCloudEventSourceClient[*workv1.ManifestWork](
			s.ctx, options, sourcelister.NewWatcherStoreLister(s.store), work.ManifestWorkStatusHash, s.codec)
	})
	if s.resyncErr != nil {
		return fmt.Errorf("resync client: %w", s.resyncErr)
	}
	return s.resyncClient.Resync(s.ctx, cluster)
}

func (s *source) listLocalWorks(ctx context.Context) ([]*workv1.ManifestWork, error) {
	works := []*workv1.ManifestWork{}
	if s.stateFile == "" {
		return works, nil
	}
	data, err := os.ReadFile(s.stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return works, nil
	}
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return works, nil
	}
	if err := json.Unmarshal(data, &works); err != nil {
		return nil, fmt.Errorf("parse state file %s: %w", s.stateFile, err)
	}
	return works, nil
}

func (s *source) writeState() {
	if s.stateFile == "" {
		return
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	works, err := s.store.ListAll()
	if err != nil {
		klog.Errorf("list works for state file: %v", err)
		return
	}
	sort.Slice(works, func(i, j int) bool {
		if works[i].Namespace != works[j].Namespace {
			return works[i].Namespace < works[j].Namespace
		}
		return works[i].Name < works[j].Name
	})
	data, err := json.Marshal(works)
	if err != nil {
		klog.Errorf("marshal state: %v", err)
		return
	}
	if err := wire.WriteFileAtomic(s.stateFile, data); err != nil {
		klog.Errorf("write state file: %v", err)
	}
}

func (s *source) consumeWatch(w watch.Interface) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case evt, ok := <-w.ResultChan():
			if !ok {
				return
			}
			mw, isWork := evt.Object.(*workv1.ManifestWork)
			if !isWork {
				klog.Warningf("unexpected watch object %T", evt.Object)
				continue
			}
			if !s.quiet {
				hash, err := work.ManifestWorkStatusHash(mw)
				if err != nil {
					hash = "error: " + err.Error()
				}
				wire.Emit(watchLine{
					Event: "watch", Type: evt.Type, Namespace: mw.Namespace, Name: mw.Name, UID: mw.UID,
					ResourceVersion: mw.ResourceVersion, Status: mw.Status, StatusHash: hash,
				})
			}
			s.writeState()
		}
	}
}

func patchType(t string) (kubetypes.PatchType, error) {
	switch t {
	case "merge", "", string(kubetypes.MergePatchType):
		return kubetypes.MergePatchType, nil
	case "json", string(kubetypes.JSONPatchType):
		return kubetypes.JSONPatchType, nil
	case "strategic", string(kubetypes.StrategicMergePatchType):
		return kubetypes.StrategicMergePatchType, nil
	}
	return "", fmt.Errorf("unknown patchType %q", t)
}

func (s *source) handle(cmd *wire.Command) {
	ctx := s.ctx
	switch cmd.Op {
	case "create":
		mw := &workv1.ManifestWork{}
		if err := json.Unmarshal(cmd.Work, mw); err != nil {
			wire.Reply(cmd, fmt.Errorf("invalid work: %v", err), nil, nil)
			return
		}
		ns := mw.Namespace
		if cmd.Namespace != "" {
			ns = cmd.Namespace
		}
		created, err := s.works(ns).Create(ctx, mw, metav1.CreateOptions{})
		wire.Reply(cmd, err, workOrNil(created, err), nil)
	case "patch":
		pt, err := patchType(cmd.PatchType)
		if err != nil {
			wire.Reply(cmd, err, nil, nil)
			return
		}
		patched, err := s.works(cmd.Namespace).Patch(ctx, cmd.Name, pt, cmd.Patch, metav1.PatchOptions{})
		wire.Reply(cmd, err, workOrNil(patched, err), nil)
	case "delete":
		err := s.works(cmd.Namespace).Delete(ctx, cmd.Name, metav1.DeleteOptions{})
		wire.Reply(cmd, err, nil, nil)
	case "get":
		got, err := s.works(cmd.Namespace).Get(ctx, cmd.Name, metav1.GetOptions{})
		wire.Reply(cmd, err, workOrNil(got, err), nil)
	case "list":
		list, err := s.works(cmd.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			wire.Reply(cmd, err, nil, nil)
			return
		}
		items := list.Items
		if items == nil {
			items = []workv1.ManifestWork{}
		}
		sort.Slice(items, func(i, j int) bool {
			return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
		})
		wire.Reply(cmd, nil, nil, items)
	case "lifecycle":
		s.runLifecycle(cmd)
	case "resync":
		cluster := types.ClusterAll
		if cmd.Cluster != nil {
			cluster = *cmd.Cluster
		}
		wire.Reply(cmd, s.resync(cluster), nil, nil)
	default:
		wire.Reply(cmd, fmt.Errorf("unknown op %q", cmd.Op), nil, nil)
	}
}

func workOrNil(w *workv1.ManifestWork, err error) any {
	if err != nil || w == nil {
		return nil
	}
	return w
}
