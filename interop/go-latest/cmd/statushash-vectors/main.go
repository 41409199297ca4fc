// statushash-vectors writes the golden vectors of the `statushash` CloudEvent
// extension of sdk-go v1.3.0 (clients/statushash.StatusHash, which the v1.x
// agent codec stamps on every status event). It reads the v0.15.0 status hash
// vectors (their `go_json` is a ManifestWorkStatus as Go encodes it), hashes
// each status with the v1.3.0 function and prints the vectors as JSON:
//
//	go run ./cmd/statushash-vectors < testdata/golden/status_hash.json > testdata/golden/status_hash_v1.json
package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/statushash"
)

type inCase struct {
	Name   string `json:"name"`
	Note   string `json:"note,omitempty"`
	GoJSON string `json:"go_json"`
}

type outCase struct {
	Name       string `json:"name"`
	Note       string `json:"note,omitempty"`
	StatusJSON string `json:"status_json"`
	HashedJSON string `json:"hashed_json"`
	Hash       string `json:"hash"`
}

func main() {
	var in struct {
		Cases []inCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	out := []outCase{}
	for _, c := range in.Cases {
		work := &workv1.ManifestWork{}
		work.UID = "00000000-0000-0000-0000-000000000001"
		if err := json.Unmarshal([]byte(c.GoJSON), &work.Status); err != nil {
			fail(fmt.Errorf("%s: %v", c.Name, err))
		}
		hash, err := statushash.StatusHash(work)
		if err != nil {
			fail(fmt.Errorf("%s: %v", c.Name, err))
		}
		// The bytes StatusHash hashes, re-derived the same way to show them; checked
		// against the hash below.
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(work)
		if err != nil {
			fail(err)
		}
		status, _, _ := unstructured.NestedMap(u, "status")
		hashed, err := json.Marshal(status)
		if err != nil {
			fail(err)
		}
		if fmt.Sprintf("%x", sha256.Sum256(hashed)) != hash {
			fail(fmt.Errorf("%s: the re-derived bytes do not give StatusHash's hash", c.Name))
		}
		out = append(out, outCase{Name: c.Name, Note: c.Note, StatusJSON: c.GoJSON, HashedJSON: string(hashed), Hash: hash})
	}
	doc := map[string]any{
		"description": "The `statushash` CloudEvent extension of sdk-go v1.x agents (v0.16 and later). For each case the " +
			"ManifestWorkStatus in `status_json` (Go's encoding/json of the status, taken from the `go_json` of the v0.15.0 " +
			"status_hash.json case of the same name) was decoded into a ManifestWork and hashed with " +
			"clients/statushash.StatusHash: lower-case hex SHA-256 of `hashed_json`, the json.Marshal of the status " +
			"after runtime.DefaultUnstructuredConverter.ToUnstructured (object keys sorted).",
		"produced_by": "open-cluster-management.io/sdk-go v1.3.0 (interop/go-latest/cmd/statushash-vectors)",
		"part":        "v1",
		"cases":       out,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "statushash-vectors:", err)
	os.Exit(1)
}
