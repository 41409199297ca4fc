//go:build kafka

// kafka-create-topics is a test helper (build tag kafka): it creates topics on a
// real Kafka broker with the librdkafka admin client and exits. The sdk-go v0.15.0
// Kafka consumer fails ("Subscribed topic not available") when a pattern it
// subscribes to matches no topic yet, so the interop runner creates a cell's
// topics before its Go clients start.
//
//	kafka-create-topics --bootstrap-server 127.0.0.1:9092 --topics a,b,c [--partitions 1]
//
// Prints {"event":"created","topics":[...]} (topics that already existed count as
// created) or {"event":"fatal","error":"..."} and exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/ocm-ce/interop/common/wire"
)

func main() {
	bootstrap := flag.String("bootstrap-server", "", "host:port of the broker")
	topics := flag.String("topics", "", "comma-separated topics to create")
	partitions := flag.Int("partitions", 1, "partitions per topic")
	timeout := flag.Duration("timeout", 30*time.Second, "overall timeout")
	flag.Parse()
	if err := run(*bootstrap, *topics, *partitions, *timeout); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		os.Exit(1)
	}
}

func run(bootstrap, topics string, partitions int, timeout time.Duration) error {
	if bootstrap == "" {
		return errors.New("--bootstrap-server is required")
	}
	var specs []kafka.TopicSpecification
	var names []string
	for _, t := range strings.Split(topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			specs = append(specs, kafka.TopicSpecification{Topic: t, NumPartitions: partitions, ReplicationFactor: 1})
			names = append(names, t)
		}
	}
	if len(specs) == 0 {
		return errors.New("--topics names no topic")
	}
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	results, err := admin.CreateTopics(ctx, specs, kafka.SetAdminOperationTimeout(timeout))
	if err != nil {
		return err
	}
	for _, r := range results {
		if code := r.Error.Code(); code != kafka.ErrNoError && code != kafka.ErrTopicAlreadyExists {
			return fmt.Errorf("create topic %s: %v", r.Topic, r.Error)
		}
	}
	wire.Emit(map[string]any{"event": "created", "topics": names})
	return nil
}
