package incident

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecodeSummary: the summary of a record with a verdict, a timeline and commands,
// against encoding/json decoding the same fields.
func BenchmarkDecodeSummary(b *testing.B) {
	inc := tricky("cluster healthy again", "east", "entered containing: silence in place", VerdictConfirmed)
	for range 40 {
		inc.Timeline = append(inc.Timeline, inc.Timeline[0])
		inc.Commands = append(inc.Commands, inc.Commands[0])
		inc.Verdict.Evidence = append(inc.Verdict.Evidence, inc.Verdict.Evidence[0])
	}
	rec, err := json.Marshal(inc)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, err := decodeSummary(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			var r struct {
				Summary
				Verdict *struct {
					Kind VerdictKind `json:"kind"`
				} `json:"verdict"`
			}
			if err := json.Unmarshal(rec, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
