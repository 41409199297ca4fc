package main

// A work agent client wired like work.ClientHolderBuilder.NewAgentClientHolder (sdk-go v0.15.0)
// but with a publish rate limit: the builder has no option for it, the generic client's options do.

import (
	"context"
	"fmt"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	workclientset "open-cluster-management.io/api/client/work/clientset/versioned"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1alpha1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1alpha1"
	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work"
	agentclient "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/client"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/codec"
	agentlister "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/lister"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/store"
)

// manualAgentClient builds the agent work client with limit and returns its clientset (for the
// informer) and its ManifestWork interface.
func manualAgentClient(ctx context.Context, config any, cluster, agentID string, limit options.EventRateLimit,
	watcherStore store.WorkClientWatcherStore) (workclientset.Interface, func(string) workv1client.ManifestWorkInterface, error) {
	opts, err := generic.BuildCloudEventsAgentOptions(config, cluster, agentID)
	if err != nil {
		return nil, nil, fmt.Errorf("build agent options: %w", err)
	}
	opts.EventRateLimit = limit
	client, err := generic.NewCloudEventAgentClient[*workv1.ManifestWork](ctx, opts,
		agentlister.NewWatcherStoreLister(watcherStore), work.ManifestWorkStatusHash, agentcodec.NewManifestBundleCodec())
	if err != nil {
		return nil, nil, fmt.Errorf("create cloudevents agent client: %w", err)
	}
	client.Subscribe(ctx, watcherStore.HandleReceivedWork)
	works := agentclient.NewManifestWorkAgentClient(client, watcherStore, cluster)
	resync := func() {
		if err := client.Resync(ctx, types.SourceAll); err != nil {
			klog.Errorf("failed to send resync request, %v", err)
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-client.ReconnectedChan():
				resync()
			}
		}
	}()
	go func() {
		if store.WaitForStoreInit(ctx, watcherStore.HasInitiated) {
			resync()
		}
	}()
	v1 := workV1{works: works}
	return clientSet{v1: v1}, v1.ManifestWorks, nil
}

type clientSet struct{ v1 workV1 }

var _ workclientset.Interface = clientSet{}

func (c clientSet) WorkV1() workv1client.WorkV1Interface                   { return c.v1 }
func (c clientSet) WorkV1alpha1() workv1alpha1client.WorkV1alpha1Interface { return nil }
func (c clientSet) Discovery() discovery.DiscoveryInterface                { return nil }

type workV1 struct {
	works *agentclient.ManifestWorkAgentClient
}

var _ workv1client.WorkV1Interface = workV1{}

func (c workV1) ManifestWorks(namespace string) workv1client.ManifestWorkInterface {
	c.works.SetNamespace(namespace)
	return c.works
}
func (c workV1) AppliedManifestWorks() workv1client.AppliedManifestWorkInterface { return nil }
func (c workV1) RESTClient() rest.Interface                                      { return nil }
