// grpc-broker-latest is a test helper: the agent-facing gRPC broker of sdk-go
// v1.3.0 (server/grpc.GRPCBroker: subscription-id header, heartbeats, spec
// resync answered by the broker) with an in-memory ManifestWork service that
// plays the source. It is driven through JSON lines on stdin and reports JSON
// lines on stdout (see ../../README.md). It serves plaintext gRPC on loopback.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cloudeventstypes "github.com/cloudevents/sdk-go/v2/types"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/payload"
	sourcecodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/source/codec"
	pbv1 "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc/protobuf/v1"
	cetypes "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/server"
	grpcbroker "open-cluster-management.io/sdk-go/pkg/cloudevents/server/grpc"

	"github.com/ocm-ce/interop/common/wire"
)

// workService is the broker's server.Service for ManifestWorks: an in-memory
// source keyed by work UID, saved to stateFile (when set) after every change so
// a restarted broker serves the same works, as a hub backed by a database does.
type workService struct {
	mu        sync.Mutex
	sourceID  string
	codec     *sourcecodec.ManifestBundleCodec
	works     map[kubetypes.UID]*workv1.ManifestWork
	handler   server.EventHandler
	stateFile string
}

// load reads the works saved by an earlier run; a missing file is an empty store.
func (s *workService) load() error {
	if s.stateFile == "" {
		return nil
	}
	data, err := os.ReadFile(s.stateFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var list []*workv1.ManifestWork
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("state file %s: %v", s.stateFile, err)
	}
	for _, w := range list {
		s.works[w.UID] = w
	}
	return nil
}

// saveLocked writes the works to the state file (write and rename: a kill
// leaves the old or the new state, never half of one).
func (s *workService) saveLocked() {
	if s.stateFile == "" {
		return
	}
	data, err := json.Marshal(s.sortedLocked())
	if err == nil {
		tmp := s.stateFile + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, s.stateFile)
		}
	}
	if err != nil {
		klog.Errorf("saving the state file: %v", err)
	}
}

var _ server.Service = &workService{}

func (s *workService) List(_ context.Context, opts cetypes.ListOptions) ([]*cloudevents.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evts := []*cloudevents.Event{}
	for _, w := range s.sortedLocked() {
		if opts.ClusterName != "" && w.Namespace != opts.ClusterName {
			continue
		}
		evt, err := s.encode(w, cetypes.UpdateRequestAction)
		if err != nil {
			return nil, err
		}
		evts = append(evts, evt)
	}
	return evts, nil
}

func (s *workService) HandleStatusUpdate(_ context.Context, evt *cloudevents.Event) error {
	line := map[string]any{
		"event":      "status_event",
		"type":       evt.Type(),
		"resourceid": extString(evt, cetypes.ExtensionResourceID),
		"sequenceid": extString(evt, cetypes.ExtensionStatusUpdateSequenceID),
	}
	w, err := s.codec.Decode(evt)
	if err != nil {
		line["error"] = err.Error()
		wire.Emit(line)
		return err
	}
	line["status"] = w.Status
	wire.Emit(line)

	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.works[w.UID]
	if !ok {
		return nil
	}
	if meta.IsStatusConditionTrue(w.Status.Conditions, common.ResourceDeleted) {
		delete(s.works, w.UID)
		s.saveLocked()
		wire.Emit(map[string]any{"event": "watch", "type": "DELETED", "namespace": cur.Namespace, "name": cur.Name,
			"uid": cur.UID})
		return nil
	}
	updated := cur.DeepCopy()
	updated.Status = w.Status
	s.works[w.UID] = updated
	s.saveLocked()
	wire.Emit(map[string]any{"event": "watch", "type": "MODIFIED", "namespace": updated.Namespace, "name": updated.Name,
		"uid": updated.UID, "generation": updated.Generation, "status": updated.Status})
	return nil
}

func (s *workService) RegisterHandler(_ context.Context, handler server.EventHandler) {
	s.handler = handler
}

func (s *workService) encode(w *workv1.ManifestWork, action cetypes.EventAction) (*cloudevents.Event, error) {
	return s.codec.Encode(s.sourceID, cetypes.CloudEventsType{
		CloudEventsDataType: payload.ManifestBundleEventDataType,
		SubResource:         cetypes.SubResourceSpec,
		Action:              action,
	}, w)
}

func (s *workService) sortedLocked() []*workv1.ManifestWork {
	list := make([]*workv1.ManifestWork, 0, len(s.works))
	for _, w := range s.works {
		list = append(list, w)
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].Namespace+"/"+list[i].Name < list[j].Namespace+"/"+list[j].Name
	})
	return list
}

func (s *workService) findLocked(namespace, name string) *workv1.ManifestWork {
	for _, w := range s.works {
		if w.Namespace == namespace && w.Name == name {
			return w
		}
	}
	return nil
}

// publish stores w and sends its spec event to the subscribed agents.
func (s *workService) publish(ctx context.Context, w *workv1.ManifestWork, action cetypes.EventAction) error {
	evt, err := s.encode(w, action)
	if err != nil {
		return err
	}
	s.works[w.UID] = w
	s.saveLocked()
	return s.handler.HandleEvent(ctx, evt)
}

func extString(evt *cloudevents.Event, name string) string {
	v, ok := evt.Extensions()[name]
	if !ok {
		return ""
	}
	str, err := cloudeventstypes.ToString(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return str
}

func main() {
	var (
		listen            = flag.String("listen", "127.0.0.1:0", "gRPC listen address (loopback)")
		sourceID          = flag.String("source-id", "source1", "source ID used for spec events and work UIDs")
		heartbeatInterval = flag.Duration("heartbeat-interval", 10*time.Second, "broker heartbeat interval (>= 10s)")
		heartbeatDisabled = flag.Bool("heartbeat-disabled", false, "disable broker heartbeats")
		stateFile         = flag.String("state-file", "", "keep the works in this JSON file across restarts")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if err := run(*listen, *sourceID, *stateFile, *heartbeatInterval, *heartbeatDisabled); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Errorf("grpc-broker-latest: %v", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(listen, sourceID, stateFile string, heartbeatInterval time.Duration, heartbeatDisabled bool) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	opts := grpcbroker.NewBrokerOptions()
	opts.HeartbeatCheckInterval = heartbeatInterval
	opts.HeartbeatDisabled = heartbeatDisabled
	if err := opts.Validate(); err != nil {
		return err
	}
	broker := grpcbroker.NewGRPCBroker(opts)
	svc := &workService{sourceID: sourceID, codec: sourcecodec.NewManifestBundleCodec(),
		works: map[kubetypes.UID]*workv1.ManifestWork{}, stateFile: stateFile}
	if err := svc.load(); err != nil {
		return err
	}
	broker.RegisterService(ctx, payload.ManifestBundleEventDataType, svc)

	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	pbv1.RegisterCloudEventServiceServer(srv, broker)
	go func() {
		if err := srv.Serve(lis); err != nil {
			klog.Errorf("serve: %v", err)
		}
	}()
	defer srv.Stop()

	wire.Emit(map[string]string{"event": "ready", "address": lis.Addr().String()})

	quit := make(chan struct{})
	go func() {
		wire.ReadCommands(os.Stdin, func(cmd *wire.Command) bool {
			if cmd.Op == "quit" {
				wire.Reply(cmd, nil, nil, nil)
				return false
			}
			handle(ctx, svc, broker, cmd)
			return true
		})
		close(quit)
	}()
	select {
	case <-quit:
	case <-ctx.Done():
	}
	return nil
}

func handle(ctx context.Context, s *workService, broker *grpcbroker.GRPCBroker, cmd *wire.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd.Op {
	case "create":
		w := &workv1.ManifestWork{}
		if err := json.Unmarshal(cmd.Work, w); err != nil {
			wire.Reply(cmd, fmt.Errorf("invalid work: %v", err), nil, nil)
			return
		}
		if cmd.Namespace != "" {
			w.Namespace = cmd.Namespace
		}
		if w.Namespace == "" || w.Name == "" {
			wire.Reply(cmd, fmt.Errorf("work namespace (cluster) and name are required"), nil, nil)
			return
		}
		if s.findLocked(w.Namespace, w.Name) != nil {
			wire.Reply(cmd, fmt.Errorf("work %s/%s already exists", w.Namespace, w.Name), nil, nil)
			return
		}
		if w.UID == "" {
			w.UID = kubetypes.UID(utils.UID(s.sourceID, common.ManifestWorkGR.String(), w.Namespace, w.Name))
		}
		if w.Generation == 0 {
			w.Generation = 1
		}
		if err := utils.EncodeManifests(w); err != nil {
			wire.Reply(cmd, err, nil, nil)
			return
		}
		err := s.publish(ctx, w, cetypes.CreateRequestAction)
		wire.Reply(cmd, err, w, nil)
	case "patch":
		cur := s.findLocked(cmd.Namespace, cmd.Name)
		if cur == nil {
			wire.Reply(cmd, fmt.Errorf("work %s/%s not found", cmd.Namespace, cmd.Name), nil, nil)
			return
		}
		pt := kubetypes.MergePatchType
		if cmd.PatchType == "json" {
			pt = kubetypes.JSONPatchType
		}
		patched, err := utils.Patch(pt, cur, cmd.Patch)
		if err != nil {
			wire.Reply(cmd, err, nil, nil)
			return
		}
		patched.Generation = cur.Generation + 1
		err = s.publish(ctx, patched, cetypes.UpdateRequestAction)
		wire.Reply(cmd, err, patched, nil)
	case "delete":
		cur := s.findLocked(cmd.Namespace, cmd.Name)
		if cur == nil {
			wire.Reply(cmd, nil, nil, nil)
			return
		}
		deleting := cur.DeepCopy()
		now := metav1.Now()
		deleting.DeletionTimestamp = &now
		err := s.publish(ctx, deleting, cetypes.DeleteRequestAction)
		wire.Reply(cmd, err, nil, nil)
	case "get":
		cur := s.findLocked(cmd.Namespace, cmd.Name)
		if cur == nil {
			wire.Reply(cmd, fmt.Errorf("work %s/%s not found", cmd.Namespace, cmd.Name), nil, nil)
			return
		}
		wire.Reply(cmd, nil, cur, nil)
	case "list":
		wire.Reply(cmd, nil, nil, s.sortedLocked())
	case "subscribers":
		subs := broker.Subscribers().UnsortedList()
		sort.Strings(subs)
		wire.Reply(cmd, nil, nil, subs)
	default:
		wire.Reply(cmd, fmt.Errorf("unknown op %q", cmd.Op), nil, nil)
	}
}
