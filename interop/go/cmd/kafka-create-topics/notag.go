//go:build !kafka

// kafka-create-topics needs the kafka build tag (cgo, librdkafka).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kafka-create-topics: built without -tags kafka")
	os.Exit(2)
}
