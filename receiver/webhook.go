package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/semaphore"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// webhookVersion is the only payload version accepted (Alertmanager's webhook protocol v4).
const webhookVersion = "4"

// The memory of webhook bodies being read and decoded is bounded in two lanes, so that small
// notifications never wait behind large or slow ones. A decoded notification plus its journal
// transaction is about ten times its body.
//   - The first smallBodyBytes of every body are read before it asks for any budget: a sender
//     holds only memory for bytes it has actually sent, so senders that trickle a body (or
//     stall) hold no budget at all. A body that ends within them (up to ~90 alerts) is decoded
//     under the small lane's budget, taken once the body is in: it waits only for other small
//     notifications being decoded, never for a sender.
//   - A longer body then reserves its declared length (the whole limit when it is chunked)
//     from the large lane before the rest is read: 16 MiB of bodies (four 10,000-alert
//     notifications) keeps the daemon within a few hundred MiB under any flood.
const (
	smallBodyBytes        = 64 << 10
	maxSmallBytesInFlight = 4 << 20 // 64 small bodies decoded at once
	maxBodyBytesInFlight  = 16 << 20
)

// bodyBudget is the two lanes' semaphores, in bytes.
type bodyBudget struct {
	small, large *semaphore.Weighted
}

func newBodyBudget() *bodyBudget {
	return &bodyBudget{small: semaphore.NewWeighted(maxSmallBytesInFlight), large: semaphore.NewWeighted(maxBodyBytesInFlight)}
}

// errBodyBudget is a body that could not get its share of the budget before its request ended.
var errBodyBudget = errors.New("gave up waiting for memory to read the body")

// maxReportedProblems caps how many bad alerts a 400 answer lists.
const maxReportedProblems = 5

// webhookResult is the 200 answer: the incidents the notification touched.
type webhookResult struct {
	Status    string           `json:"status"`
	Incidents []webhookTouched `json:"incidents"`
}

type webhookTouched struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

// handleWebhook journals a notification and answers 200 only once it is on disk. Nothing is
// journaled from a notification answered 4xx; a 503 asks Alertmanager to retry.
func (s *Server) handleWebhook(c echo.Context) error {
	st := s.state.Load()
	body, release, err := s.bodies.read(c, st.cfg.Webhook.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"body exceeds %d bytes (webhook.max_body_bytes); lower max_alerts in the Alertmanager webhook_config or raise the limit", tooBig.Limit))
		case errors.Is(err, errBodyBudget):
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
	defer release()
	msg, err := decodeMessage(body)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	ds, err := toDeliveries(msg, st.cfg, s.now())
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	results, err := s.j.Ingest(c.Request().Context(), ds)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "journal write failed, retry later: "+err.Error()).SetInternal(err)
	}
	s.account(msg, ds, results)

	out := webhookResult{Status: "success"}
	seen := map[string]bool{}
	rb := s.getRunbook()
	for _, r := range results {
		if seen[r.IncidentID] {
			continue
		}
		seen[r.IncidentID] = true
		out.Incidents = append(out.Incidents, webhookTouched{ID: r.IncidentID, Created: r.Created})
		// A closed incident (unknown cluster, a late resolution) has nothing left to run, and
		// waking the engine for it would make it read the whole record on every resend.
		if rb != nil && r.Open {
			rb.Kick(r.IncidentID)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// read reads the whole body, up to limit bytes, in the lane its size puts it in (see
// smallBodyBytes), and returns it with the release of the budget it holds, to be called once
// the body's alerts are journaled.
func (b *bodyBudget) read(c echo.Context, limit int64) ([]byte, func(), error) {
	ctx, req := c.Request().Context(), c.Request()
	r := http.MaxBytesReader(c.Response(), req.Body, limit)
	declared := req.ContentLength
	head := min(limit, smallBodyBytes)
	// Room for a small notification and EOF; a buffer for a longer body grows as bytes arrive,
	// so a declared length costs nothing until it is sent.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(declared, 512), 4<<10)+1))
	if _, err := buf.ReadFrom(io.LimitReader(r, head+1)); err != nil {
		return nil, nil, err
	}
	if n := int64(buf.Len()); n <= head {
		n = max(n, 1)
		if err := b.small.Acquire(ctx, n); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errBodyBudget, err)
		}
		return buf.Bytes(), func() { b.small.Release(n) }, nil
	}
	weight := declared
	if weight <= 0 || weight > limit {
		weight = limit
	}
	weight = min(weight, maxBodyBytesInFlight)
	if err := b.large.Acquire(ctx, weight); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBodyBudget, err)
	}
	if declared > int64(buf.Len()) && declared <= limit {
		buf.Grow(int(declared) - buf.Len() + 1) // one allocation when the length is known
	}
	if _, err := buf.ReadFrom(r); err != nil {
		b.large.Release(weight)
		return nil, nil, err
	}
	return buf.Bytes(), func() { b.large.Release(weight) }, nil
}

// account updates metrics and logs what was journaled.
func (s *Server) account(msg *webhook.Message, ds []incident.Delivery, results []incident.IngestResult) {
	unknown := map[string]string{} // cluster -> an incident of it
	dropped := map[string]string{} // incident -> its cluster label value, for alerts dropped by the cap
	var notes []string
	for i, d := range ds {
		notes = append(notes, d.Notes...)
		s.metrics.alertsReceived.WithLabelValues(s.metrics.alertLabel(d.Alertname), d.Alert.Status).Inc()
		if results[i].Dropped {
			// An unknown cluster's name is the payload's: counted under "", as incidents_total does.
			label := ""
			if d.Known {
				label = d.Cluster
			}
			s.metrics.alertsDropped.WithLabelValues(label).Inc()
			dropped[results[i].IncidentID] = d.Cluster
		}
		if !d.Known {
			s.metrics.unknownCluster.Inc()
			if results[i].Created {
				s.metrics.unknownIncidents.Inc()
			}
			unknown[d.Cluster] = results[i].IncidentID
		}
		if results[i].Created {
			s.logger.Info("incident opened", "id", results[i].IncidentID, "cluster", d.Cluster,
				"alertname", d.Alertname, "status", d.Alert.Status, "group_key", msg.GroupKey)
		}
	}
	if len(unknown) > 0 {
		clusters := slices.Sorted(maps.Keys(unknown))
		if r, ok := s.unknownLog.report(clusters, s.now()); ok {
			s.logger.Warn("alerts for clusters not in the configuration: journaled and closed as unknown_cluster; add the clusters to the configuration and reload, or stop routing their alerts here",
				"clusters", strings.Join(r.names, ","), "more_clusters", r.more, "incident", unknown[r.names[0]],
				"suppressed_clusters", r.suppressed, "group_key", msg.GroupKey)
		}
	}
	if len(dropped) > 0 {
		ids := slices.Sorted(maps.Keys(dropped))
		s.logger.Debug("alerts not stored: their incident holds the most alerts it keeps (webhook.max_alerts_per_incident)",
			"incidents", strings.Join(ids, ","), "cluster", dropped[ids[0]], "group_key", msg.GroupKey)
	}
	if len(notes) > 0 {
		s.logger.Warn("label values too long for the journal were cut to fit; the alerts are journaled with their full labels",
			"cuts", len(notes), "first", notes[0], "group_key", msg.GroupKey)
	}
	if msg.TruncatedAlerts > 0 {
		s.metrics.truncated.Add(float64(msg.TruncatedAlerts))
		s.logger.Warn("Alertmanager truncated the notification; raise max_alerts in its webhook_config",
			"truncated_alerts", msg.TruncatedAlerts, "group_key", msg.GroupKey)
	}
}

// countWebhook counts every answer of POST /webhook, authentication failures included.
func (s *Server) countWebhook(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		code := c.Response().Status
		if err != nil {
			code = http.StatusInternalServerError
			var he *echo.HTTPError
			if errors.As(err, &he) {
				code = he.Code
			}
		}
		s.metrics.webhookRequests.WithLabelValues(strconv.Itoa(code)).Inc()
		return err
	}
}

// decodeMessage parses Alertmanager's own payload type and checks its version.
func decodeMessage(body []byte) (*webhook.Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body: want an Alertmanager webhook notification (version 4)")
	}
	var lean leanMessage
	if err := json.Unmarshal(body, &lean); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	msg := lean.Message
	if msg.Version != webhookVersion {
		return nil, fmt.Errorf("unsupported webhook payload version %q: want %q", msg.Version, webhookVersion)
	}
	if msg.Data == nil || len(msg.Alerts) == 0 {
		return nil, errors.New("notification holds no alerts")
	}
	return &msg, nil
}

// leanMessage decodes Alertmanager's webhook.Message without the group-level label and
// annotation maps, which nothing here reads: they are a good part of a small notification's
// decoding time. The outer fields shadow the embedded ones of the same JSON name.
type leanMessage struct {
	webhook.Message
	GroupLabels       skipJSON `json:"groupLabels"`
	CommonLabels      skipJSON `json:"commonLabels"`
	CommonAnnotations skipJSON `json:"commonAnnotations"`
}

// skipJSON accepts any JSON value and keeps nothing.
type skipJSON struct{}

func (skipJSON) UnmarshalJSON([]byte) error { return nil }

// toDeliveries routes every alert to its (cluster, alertname). Any alert without an alertname,
// without a cluster label or with an unknown status rejects the whole notification: a partial
// 200 would hide the misconfiguration, and Alertmanager shows a 400's body in its log.
func toDeliveries(msg *webhook.Message, cfg *config.Config, now time.Time) ([]incident.Delivery, error) {
	ds := make([]incident.Delivery, 0, len(msg.Alerts))
	var problems []string
	bad := 0
	truncated := int(min(msg.TruncatedAlerts, math.MaxInt32))
	for i, a := range msg.Alerts {
		problem := ""
		alertname := a.Labels[string(model.AlertNameLabel)]
		cluster := clusterOf(a.Labels, cfg.Webhook.ClusterLabels)
		switch {
		case a.Status != string(model.AlertFiring) && a.Status != string(model.AlertResolved):
			problem = fmt.Sprintf("status %q is neither firing nor resolved", a.Status)
		case alertname == "":
			problem = "no alertname label"
		case cluster == "":
			problem = fmt.Sprintf("no cluster label (looked for %s)", strings.Join(cfg.Webhook.ClusterLabels, ", "))
		}
		if problem != "" {
			bad++
			if len(problems) < maxReportedProblems {
				problems = append(problems, fmt.Sprintf("alerts[%d] (fingerprint %q): %s", i, a.Fingerprint, problem))
			}
			continue
		}
		known := cfg.Cluster(cluster) != nil
		maxAlerts := cfg.Webhook.MaxAlertsPerIncident
		if !known {
			maxAlerts = cfg.Webhook.MaxAlertsPerUnknownCluster
		}
		ds = append(ds, incident.Delivery{
			Cluster:   cluster,
			Alertname: alertname,
			Known:     known,
			Truncated: truncated,
			MaxAlerts: maxAlerts,
			Alert: incident.AlertRecord{
				GroupKey:    msg.GroupKey,
				Receiver:    msg.Receiver,
				ExternalURL: msg.ExternalURL,
				Fingerprint: a.Fingerprint,
				Status:      a.Status,
				Labels:      a.Labels, // the message is not used after this; no copy needed
				StartsAt:    a.StartsAt,
				EndsAt:      a.EndsAt,
				ReceivedAt:  now,
			},
		})
	}
	if bad > 0 {
		more := ""
		if bad > len(problems) {
			more = fmt.Sprintf("; and %d more", bad-len(problems))
		}
		return nil, fmt.Errorf("%d of %d alerts rejected, nothing journaled: %s%s",
			bad, len(msg.Alerts), strings.Join(problems, "; "), more)
	}
	return ds, nil
}

// clusterOf returns the value of the first cluster label present.
func clusterOf(labels map[string]string, names []string) string {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v
		}
	}
	return ""
}

// The unknown-cluster warning is rate-limited across clusters, since one notification can name
// thousands: a cluster is named at most once per unknownLogEvery, a notification writes at most
// one line naming at most unknownLogNames clusters, and at most unknownLogLines lines go out
// per unknownLogEvery. What is held back is counted in the next line; the unknown_cluster
// counter and the journal have every alert.
const (
	unknownLogEvery = 5 * time.Minute
	unknownLogLines = 10
	unknownLogNames = 5
	unknownLogKeep  = 10000 // clusters remembered; forgetting one only means naming it again
)

// unknownLog decides what the unknown-cluster warning says.
type unknownLog struct {
	mu          sync.Mutex
	named       map[string]time.Time // cluster -> when it was last named (or held back)
	windowStart time.Time
	lines       int // lines written since windowStart
	suppressed  int // clusters held back since the last line
}

// unknownReport is one warning line: the clusters it names, how many other new ones the
// notification had, and how many were held back before it.
type unknownReport struct {
	names      []string
	more       int
	suppressed int
}

// report returns the line to write for a notification's unknown clusters (sorted), or false.
func (l *unknownLog) report(clusters []string, now time.Time) (unknownReport, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.named == nil {
		l.named = map[string]time.Time{}
	}
	var fresh []string
	for _, c := range clusters {
		if t, ok := l.named[c]; ok && now.Sub(t) < unknownLogEvery {
			continue // named recently; Alertmanager resends every repeat_interval
		}
		fresh = append(fresh, c)
		l.named[c] = now
	}
	if len(l.named) > unknownLogKeep {
		for c, t := range l.named {
			if now.Sub(t) >= unknownLogEvery {
				delete(l.named, c)
			}
		}
		if len(l.named) > unknownLogKeep {
			clear(l.named)
		}
	}
	if len(fresh) == 0 {
		return unknownReport{}, false
	}
	if now.Sub(l.windowStart) >= unknownLogEvery {
		l.windowStart, l.lines = now, 0
	}
	if l.lines >= unknownLogLines {
		l.suppressed += len(fresh)
		return unknownReport{}, false
	}
	l.lines++
	r := unknownReport{names: fresh[:min(len(fresh), unknownLogNames)], suppressed: l.suppressed}
	r.more = len(fresh) - len(r.names)
	l.suppressed = 0
	return r, true
}
