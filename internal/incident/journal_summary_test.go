package incident

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// referenceSummary is the summary as encoding/json reads it from the full record.
func referenceSummary(t testing.TB, rec []byte) Summary {
	var inc Incident
	require.NoError(t, json.Unmarshal(rec, &inc))
	s := Summary{ID: inc.ID, Cluster: inc.Cluster, Alertname: inc.Alertname, Step: inc.Step, StepDeadline: inc.StepDeadline, Outcome: inc.Outcome,
		Reason: inc.Reason, OpenedAt: inc.OpenedAt, UpdatedAt: inc.UpdatedAt, ClosedAt: inc.ClosedAt,
		ResolvedAt: inc.ResolvedAt, ContainedAt: inc.ContainedAt}
	if inc.Verdict != nil {
		s.VerdictKind = inc.Verdict.Kind
	}
	return s
}

func tricky(reason, cluster, message string, kind VerdictKind) *Incident {
	at := t0.Add(90 * time.Second)
	inc := &Incident{ID: "inc-000042", Cluster: cluster, Alertname: "ZMY_Quorum_Down", Step: StepClosed,
		Outcome: OutcomeRecovered, Reason: reason, OpenedAt: t0, UpdatedAt: at, ClosedAt: &at, ContainedAt: &at,
		Timeline: []Event{{At: t0, Step: StepReceived, Message: message}},
		Commands: []Command{{Node: "n1", Args: []string{"zmyctl", `{"kind":"x"}`}, Output: message}},
		Plan:     []string{"]}{[", message}, RemediationStarted: true}
	if kind != "" {
		inc.Verdict = &Verdict{Kind: kind, Reason: message, Evidence: []Evidence{{Node: "n1", Probe: "data", Raw: message, Value: `"kind":"x"`}},
			Conditions: map[Condition]bool{CondControl: true}}
	}
	return inc
}

func TestDecodeSummary(t *testing.T) {
	for name, inc := range map[string]*Incident{
		"plain":            tricky("cluster healthy again", "east", "opened", VerdictConfirmed),
		"no verdict":       tricky("", "west", "", ""),
		"quotes, brackets": tricky(`a "quoted" }]{[ reason \ with \\ backslashes`, `we"ird}`, `{"verdict":{"kind":"no"}}`, VerdictInconclusive),
		"control and utf8": tricky("tab\there\nnewline \u2028 ünïcødé \x01", "東京", "\"contained_at\":null", VerdictNotConfirmed),
		"open": func() *Incident {
			i := tricky("", "east", "m", "")
			i.Step, i.Outcome, i.ClosedAt, i.ContainedAt = StepAwaitingRecovery, "", nil, nil
			deadline := t0.Add(30 * time.Minute)
			i.StepEnteredAt, i.StepDeadline = t0, &deadline
			return i
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			rec, err := json.Marshal(inc)
			require.NoError(t, err)
			got, err := decodeSummary(rec)
			require.NoError(t, err)
			require.Equal(t, referenceSummary(t, rec), got)
		})
	}
	for _, bad := range []string{``, `[]`, `{"id":"x"`, `{"id" "x"}`, `{"id":}`, `{"id":"x",}`, `{"verdict":{"kind":"a"}`, `{id:1}`} {
		_, err := decodeSummary([]byte(bad))
		require.Error(t, err, "%q", bad)
	}
}

// FuzzDecodeSummary: for any strings in a record written as the journal writes it, the fast
// summary decoder agrees with encoding/json.
func FuzzDecodeSummary(f *testing.F) {
	f.Add("reason", "east", "message", "confirmed")
	f.Add(`"}]`, `\`, `{"kind":"x"}`, "")
	f.Add("\x00\xff", "\u2028", `\"`, `"`)
	f.Fuzz(func(t *testing.T, reason, cluster, message, kind string) {
		rec, err := json.Marshal(tricky(reason, cluster, message, VerdictKind(kind)))
		require.NoError(t, err)
		got, err := decodeSummary(rec)
		require.NoError(t, err)
		require.Equal(t, referenceSummary(t, rec), got)
	})
}
