package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/common/model"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// webhookVersion is the only payload version accepted (Alertmanager's webhook protocol v4).
const webhookVersion = "4"

// maxBodyBytesInFlight bounds the webhook bodies read and decoded at the same time. A decoded
// notification plus its journal transaction is about ten times its body: 16 MiB of bodies (four
// 10,000-alert notifications) keeps the daemon in a few hundred MiB under any flood, while
// small notifications (a few KiB) never wait.
const maxBodyBytesInFlight = 16 << 20

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
	// Bound the memory of concurrent large notifications (a decoded 10,000-alert body is several
	// times its size); small ones, the usual case, never wait.
	weight := c.Request().ContentLength
	if weight <= 0 || weight > st.cfg.Webhook.MaxBodyBytes {
		weight = st.cfg.Webhook.MaxBodyBytes
	}
	weight = min(weight, maxBodyBytesInFlight)
	if err := s.bodies.Acquire(c.Request().Context(), weight); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "gave up waiting to read the body: "+err.Error())
	}
	defer s.bodies.Release(weight)
	body, err := readBody(c, st.cfg.Webhook.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"body exceeds %d bytes (webhook.max_body_bytes); lower max_alerts in the Alertmanager webhook_config or raise the limit", tooBig.Limit))
		}
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
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

// readBody reads the whole body, up to limit bytes, in one allocation when its length is known.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	n := c.Request().ContentLength
	if n <= 0 || n > limit {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, n+1)) // +1: ReadFrom needs room to see EOF
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// account updates metrics and logs what was journaled.
func (s *Server) account(msg *webhook.Message, ds []incident.Delivery, results []incident.IngestResult) {
	unknown := map[string]string{} // cluster -> an incident of it
	for i, d := range ds {
		s.metrics.alertsReceived.WithLabelValues(s.metrics.alertLabel(d.Alertname), d.Alert.Status).Inc()
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
	for cluster, id := range unknown {
		if !s.unknownLog.allow(cluster, s.now()) {
			continue // counted above; Alertmanager resends every repeat_interval
		}
		s.logger.Warn("alert for a cluster not in the configuration: journaled and closed as unknown_cluster",
			"cluster", cluster, "incident", id, "group_key", msg.GroupKey)
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
		ds = append(ds, incident.Delivery{
			Cluster:   cluster,
			Alertname: alertname,
			Known:     cfg.Cluster(cluster) != nil,
			Truncated: truncated,
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

// unknownLogEvery is how often an unknown cluster is logged again while its alerts keep coming.
const unknownLogEvery = 5 * time.Minute

// logLimiter lets a message through once per key per unknownLogEvery.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < unknownLogEvery {
		return false
	}
	if l.last == nil || len(l.last) >= 1000 {
		l.last = map[string]time.Time{} // bounded: forgetting only means logging again
	}
	l.last[key] = now
	return true
}
