package remediate

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestAfterVerdict(t *testing.T) {
	for _, tc := range []struct {
		v       *incident.Verdict
		proceed bool
		end     incident.Outcome
	}{
		{nil, false, incident.OutcomeInconclusive},
		{&incident.Verdict{Kind: incident.VerdictConfirmed}, true, ""},
		{&incident.Verdict{Kind: incident.VerdictNotConfirmed}, false, incident.OutcomeNotConfirmed},
		{&incident.Verdict{Kind: incident.VerdictInconclusive}, false, incident.OutcomeInconclusive},
	} {
		p, end, _ := afterVerdict(tc.v)
		require.Equal(t, tc.proceed, p)
		require.Equal(t, tc.end, end)
	}
}

func TestSelfHealed(t *testing.T) {
	res := t0.Add(time.Minute)
	for name, tc := range map[string]struct {
		inc  incident.Incident
		want bool
	}{
		"firing only": {incident.Incident{Alerts: []incident.AlertRecord{{Status: "firing", ReceivedAt: t0}}}, false},
		"resolved": {incident.Incident{ResolvedAt: &res,
			Alerts: []incident.AlertRecord{{Status: "firing", ReceivedAt: t0}, {Status: "resolved", ReceivedAt: res}}}, true},
		"fired again": {incident.Incident{ResolvedAt: &res,
			Alerts: []incident.AlertRecord{{Status: "resolved", ReceivedAt: res}, {Status: "firing", ReceivedAt: res.Add(time.Second)}}}, false},
		"already mutating": {incident.Incident{ResolvedAt: &res, RemediationStarted: true}, false},
	} {
		require.Equal(t, tc.want, selfHealed(&tc.inc), name)
	}
}

func TestGuards(t *testing.T) {
	cfg := config.DefaultRemediation
	cfg.AntiFlap = model.Duration(30 * time.Minute)
	recent := t0.Add(-10 * time.Minute)
	old := t0.Add(-time.Hour)
	base := func() guardInput {
		return guardInput{Now: t0, Cluster: "a", TotalClusters: 4, Cfg: cfg, Remediating: map[string]string{}}
	}
	for name, tc := range map[string]struct {
		mod   func(*guardInput)
		guard string
		out   incident.Outcome
	}{
		"all clear":                      {func(*guardInput) {}, "", ""},
		"paused":                         {func(in *guardInput) { in.Paused = &PauseState{By: "bob", Reason: "maint", At: t0} }, "paused", incident.OutcomePaused},
		"paused beats dry run":           {func(in *guardInput) { in.Paused = &PauseState{By: "bob"}; in.DryRun = true }, "paused", incident.OutcomePaused},
		"breaker open":                   {func(in *guardInput) { in.Breaker = BreakerOpen }, "breaker", incident.OutcomeBreakerOpen},
		"breaker half-open is the trial": {func(in *guardInput) { in.Breaker = BreakerHalfOpen }, "", ""},
		"other cluster busy":             {func(in *guardInput) { in.Remediating["inc-1"] = "b" }, "blast_radius", incident.OutcomeBlastRadius},
		"same cluster busy":              {func(in *guardInput) { in.Remediating["inc-1"] = "a" }, "anti_flap", incident.OutcomeAntiFlap},
		"remediated recently":            {func(in *guardInput) { in.LastFinished = &recent }, "anti_flap", incident.OutcomeAntiFlap},
		"remediated long ago":            {func(in *guardInput) { in.LastFinished = &old }, "", ""},
		"anti flap disabled":             {func(in *guardInput) { in.LastFinished = &recent; in.Cfg.AntiFlap = 0 }, "", ""},
		"anti flap overridden by a human": {func(in *guardInput) {
			in.LastFinished = &recent
			in.AntiFlapOverride = &incident.Approval{By: "alice"}
		}, "", ""},
		"override never allows two at once": {func(in *guardInput) {
			in.Remediating["inc-1"] = "a"
			in.AntiFlapOverride = &incident.Approval{By: "alice"}
		}, "anti_flap", incident.OutcomeAntiFlap},
		"dry run":              {func(in *guardInput) { in.DryRun = true }, "dry_run", incident.OutcomeDryRun},
		"two clusters allowed": {func(in *guardInput) { in.Remediating["inc-1"] = "b"; in.Cfg.BlastRadius.MaxClusters = 2 }, "", ""},
	} {
		in := base()
		tc.mod(&in)
		g, r := runGuards(in)
		require.Equal(t, tc.guard, g, name)
		if tc.out == "" {
			require.Nil(t, r, name)
		} else {
			require.Equal(t, tc.out, r.Outcome, name)
			require.NotEmpty(t, r.Reason, name)
		}
	}
}

func TestBlastRadiusLimit(t *testing.T) {
	for _, tc := range []struct {
		total int
		c     config.BlastRadiusConfig
		want  int
	}{
		{1, config.BlastRadiusConfig{MaxClusters: 1, MaxPercent: 50}, 1},
		{10, config.BlastRadiusConfig{MaxClusters: 1, MaxPercent: 50}, 1},
		{10, config.BlastRadiusConfig{MaxClusters: 8, MaxPercent: 50}, 5},
		{10, config.BlastRadiusConfig{MaxClusters: 8, MaxPercent: 0}, 8},
		{3, config.BlastRadiusConfig{MaxClusters: 0, MaxPercent: 10}, 1},
	} {
		require.Equal(t, tc.want, blastRadiusLimit(tc.total, tc.c), "%+v", tc)
	}
}

func TestDecideGate(t *testing.T) {
	open := incident.Gate{NetworkConverged: true, EtcdHealthy: true}
	closed := incident.Gate{NetworkConverged: false, EtcdHealthy: true, Reason: "partition_score 1.00 > 0"}
	deadline := t0.Add(time.Minute)
	for name, tc := range map[string]struct {
		g        incident.Gate
		err      error
		approved bool
		need     bool
		now      time.Time
		want     gateDecision
	}{
		"open and approved":         {open, nil, true, true, t0, gateOpen},
		"open, approval not needed": {open, nil, false, false, t0, gateOpen},
		"open, waiting approval":    {open, nil, false, true, t0, gateWait},
		"not converged":             {closed, nil, true, true, t0, gateWait},
		"probe error":               {open, errors.New("boom"), true, true, t0, gateWait},
		"timed out":                 {closed, nil, true, true, deadline, gateTimeout},
		"approval timed out":        {open, nil, false, true, deadline.Add(time.Second), gateTimeout},
	} {
		d, reason := decideGate(tc.g, tc.err, tc.approved, tc.need, deadline, tc.now)
		require.Equal(t, tc.want, d, name)
		require.NotEmpty(t, reason, name)
	}
}

func TestDecideRecover(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	for name, tc := range map[string]struct {
		res *zmy.RecoverResult
		err error
		ok  bool
	}{
		"strict majority":      {&zmy.RecoverResult{Majority: []string{"n1", "n2", "n3"}, Leader: "n1"}, nil, true},
		"no unique majority":   {nil, zmy.ErrNoUniqueMajority, false},
		"not converged":        {nil, zmy.ErrNotConverged, false},
		"minority named":       {&zmy.RecoverResult{Majority: []string{"n1", "n2"}}, nil, false},
		"duplicates not count": {&zmy.RecoverResult{Majority: []string{"n1", "n1", "n2"}}, nil, false},
		"unknown nodes":        {&zmy.RecoverResult{Majority: []string{"x", "y", "z"}}, nil, false},
		"empty":                {&zmy.RecoverResult{}, nil, false},
	} {
		ok, reason := decideRecover(tc.res, tc.err, nodes)
		require.Equal(t, tc.ok, ok, name)
		require.NotEmpty(t, reason, name)
	}
	// A tie is never a majority.
	ok, _ := decideRecover(&zmy.RecoverResult{Majority: []string{"n1", "n2"}}, nil, []string{"n1", "n2", "n3", "n4"})
	require.False(t, ok)
}

func TestDecideVerify(t *testing.T) {
	deadline := t0.Add(time.Minute)
	done, out, _ := decideVerify(&incident.Verdict{Healthy: true}, nil, deadline, t0)
	require.True(t, done)
	require.Equal(t, incident.OutcomeRecovered, out)
	done, _, _ = decideVerify(&incident.Verdict{Healthy: false}, nil, deadline, t0)
	require.False(t, done)
	done, out, reason := decideVerify(nil, errors.New("probe"), deadline, deadline)
	require.True(t, done)
	require.Equal(t, incident.OutcomeNeedsHuman, out)
	require.Contains(t, reason, "probe")
}

func TestNodeSelections(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	require.Equal(t, []string{"n2", "n3"}, notSuspended(nodes, map[string]string{"n1": "suspended", "n2": "leader"}))
	require.Nil(t, notSuspended(nodes, map[string]string{"n1": "suspended", "n2": "suspended", "n3": "suspended"}))
	lists := map[string][]zmy.Snapshot{
		"n1": {{Tag: "pre-recover-1"}},
		"n2": {{Tag: "other"}},
	}
	require.Equal(t, []string{"n2", "n3"}, missingSnapshot(nodes, lists, "pre-recover-1"))
	require.Equal(t, "pre-recover-1735787045", snapshotTag(t0, 0))
	require.Equal(t, "pre-recover-1735787045-r1", snapshotTag(t0, 1))
}

func TestGateStatus(t *testing.T) {
	d := t0.Add(time.Hour)
	st := gateStatus(incident.Gate{PartitionScore: 1, EtcdHealthy: false, UnhealthyEtcd: []string{"http://e1: no leader"}},
		nil, false, true, t0, d, t0.Add(time.Minute))
	require.Equal(t, []string{waitNetwork, waitEtcd, waitApproval}, st.WaitingFor)
	require.Equal(t, []string{"http://e1: no leader"}, st.UnhealthyEtcd)
	require.Equal(t, d, st.Deadline)
	st = gateStatus(incident.Gate{NetworkConverged: true, EtcdHealthy: true}, nil, true, true, t0, d, t0)
	require.Empty(t, st.WaitingFor)
	require.NotNil(t, st.WaitingFor, "an empty list, not null, for the API")
	st = gateStatus(incident.Gate{}, errors.New("boom"), false, false, t0, d, t0)
	require.Equal(t, []string{waitNetwork}, st.WaitingFor)
	require.Contains(t, st.Reason, "boom")
	require.True(t, sameGate(&st, gateStatus(incident.Gate{}, errors.New("boom"), false, false, t0, d, t0.Add(time.Second))))
}

func TestStepDeadline(t *testing.T) {
	cfg := config.Default()
	cc := &config.ClusterConfig{Name: "a"}
	// The journaled deadline wins: a restart or a reload does not move it.
	d := t0.Add(42 * time.Second)
	inc := &incident.Incident{OpenedAt: t0, Step: incident.StepContaining, StepEnteredAt: t0.Add(time.Second), StepDeadline: &d}
	require.Equal(t, d, stepDeadline(inc, cfg, cc))
	// Without one (the first step, journaled at ingest): entered + the step's budget.
	inc = &incident.Incident{OpenedAt: t0, Step: incident.StepReceived, StepEnteredAt: t0.Add(time.Second)}
	require.Equal(t, t0.Add(time.Second).Add(2*cfg.CommandTimeout(cc)), stepDeadline(inc, cfg, cc))
	// A record older than step_entered_at counts from when it was opened.
	inc = &incident.Incident{OpenedAt: t0, Step: incident.StepContaining}
	require.Equal(t, t0.Add(time.Duration(cfg.Remediation.GoldenWindow)), stepDeadline(inc, cfg, cc))
}

// The step table is one chain from received to verifying; every row has a stage and a budget,
// the guarded steps are a suffix of it, and only steps before the gate take approvals.
func TestStepTable(t *testing.T) {
	cfg := config.Default()
	cc := &config.ClusterConfig{Name: "a"}
	require.Equal(t, incident.StepReceived, runbook[0].step)
	seen := map[incident.Step]bool{}
	guarded := false
	for i, s := range runbook {
		require.False(t, seen[s.step], "step %s twice", s.step)
		seen[s.step] = true
		require.NotNil(t, s.stage, s.step)
		require.Positive(t, stepBudget(s.step, cfg, cc), s.step)
		if i+1 < len(runbook) {
			require.Equal(t, runbook[i+1].step, s.next, "successor of %s", s.step)
		} else {
			require.Empty(t, s.next, "the last step closes the incident")
		}
		require.True(t, !guarded || s.guarded, "%s: a step after the guards is guarded", s.step)
		guarded = s.guarded
		if s.mutation == "" {
			require.Empty(t, s.requires, "%s: requirements are re-read before mutations", s.step)
		}
	}
	require.False(t, pastGuards(incident.StepClosed))
	require.Equal(t, incident.StepClosed, stepNames()[len(stepNames())-1])
}

func TestApprovable(t *testing.T) {
	confirmed := &incident.Verdict{Kind: incident.VerdictConfirmed}
	for _, tc := range []struct {
		step incident.Step
		v    *incident.Verdict
		want bool
	}{
		{incident.StepReceived, nil, false},
		{incident.StepConfirming, nil, false},
		{incident.StepGuarding, confirmed, true},
		{incident.StepContaining, confirmed, true},
		{incident.StepAwaitingRecovery, confirmed, true},
		{incident.StepArbitrating, confirmed, false},
		{incident.StepClosed, confirmed, false},
	} {
		require.Equal(t, tc.want, approvable(&incident.Incident{Step: tc.step, Verdict: tc.v}), string(tc.step))
	}
}

func TestSilenceLapsedOrExpiredByAHuman(t *testing.T) {
	st := silenceStatus{id: "s1", ends: t0.Add(40 * time.Second)}
	require.True(t, lapsed(st, t0.Add(40*time.Second)), "ended at the end we gave it")
	require.True(t, lapsed(st, t0.Add(39500*time.Millisecond)), "within the slack")
	require.False(t, lapsed(st, t0.Add(10*time.Second)), "ended early: a human")
	require.False(t, lapsed(silenceStatus{id: "s1"}, t0), "no journaled end: a human, when in doubt")
	inc := &incident.Incident{Silences: []incident.Silence{
		{ID: "s1", Action: silenceCreated, At: t0, EndsAt: t0.Add(40 * time.Second)},
		{ID: "s1", Action: silenceLapsed, At: t0.Add(41 * time.Second)},
	}}
	require.Empty(t, currentSilence(inc).id, "after a lapse the next silence is created")
	require.False(t, currentSilence(inc).ended)
}
