// go-forge is a misbehaving agent built on the Go sdk-go v0.15.0 generic agent
// client: it connects as the agent of one cluster and publishes one status event
// for a ManifestWork given as JSON — for instance a `Deleted` status carrying the
// resource id of another cluster's work. The interop matrix uses it to check that
// an ocm-ce source trusts no agent. It prints {"event":"published"} and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/codec"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/payload"

	"github.com/ocm-ce/interop/common/wire"
)

// noWorks is the lister of an agent that holds nothing.
type noWorks struct{}

func (noWorks) List(types.ListOptions) ([]*workv1.ManifestWork, error) { return nil, nil }

func main() {
	var (
		transport  = flag.String("transport", "grpc", "transport: mqtt|grpc|kafka")
		configFile = flag.String("config", "", "sdk-go config file of the agent")
		cluster    = flag.String("cluster", "", "the cluster this agent connects as (the event's clustername)")
		agentID    = flag.String("agent-id", "", "agent ID")
		workFile   = flag.String("work", "", "JSON file of the ManifestWork whose status is sent")
		deleted    = flag.Bool("deleted", true, "send it as deleted (status.delete_request with a Deleted condition)")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if err := run(*transport, *configFile, *cluster, *agentID, *workFile, *deleted); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(transport, configFile, cluster, agentID, workFile string, deleted bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data, err := os.ReadFile(workFile)
	if err != nil {
		return err
	}
	w := &workv1.ManifestWork{}
	if err := json.Unmarshal(data, w); err != nil {
		return fmt.Errorf("work: %w", err)
	}
	// The event's clustername is the work's namespace: the cluster this agent is.
	w.Namespace = cluster
	action := "update_request"
	if deleted {
		action = "delete_request"
		meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{
			Type: "Deleted", Status: metav1.ConditionTrue, Reason: "ManifestsDeleted",
			Message: "The manifests are deleted from the cluster " + cluster,
		})
	}
	_, config, err := generic.NewConfigLoader(transport, configFile).LoadConfig()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	options, err := generic.BuildCloudEventsAgentOptions(config, cluster, agentID)
	if err != nil {
		return fmt.Errorf("agent options: %w", err)
	}
	client, err := generic.NewCloudEventAgentClient[*workv1.ManifestWork](ctx, options, noWorks{},
		work.ManifestWorkStatusHash, agentcodec.NewManifestBundleCodec())
	if err != nil {
		return fmt.Errorf("agent client: %w", err)
	}
	eventType := types.CloudEventsType{
		CloudEventsDataType: payload.ManifestBundleEventDataType,
		SubResource:         types.SubResourceStatus,
		Action:              types.EventAction(action),
	}
	if err := client.Publish(ctx, eventType, w); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	wire.Emit(map[string]string{"event": "published", "resourceid": string(w.UID), "clustername": cluster})
	return nil
}
