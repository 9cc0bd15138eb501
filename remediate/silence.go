package remediate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/alertmanager/pkg/labels"
	commoncfg "github.com/prometheus/common/config"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Silence actions, the values of silences_total{action} and incident.Silence.Action.
const (
	silenceCreated  = "created"
	silenceExtended = "extended"
	silenceExpired  = "expired"
	// silenceHumanExpired: a human expired the responder's silence (they want to be paged).
	silenceHumanExpired = "human_expired"
	// silenceLapsed: our silence ran out before we could extend it (Alertmanager unreachable,
	// the responder stalled); a new one is created.
	silenceLapsed  = "lapsed"
	silenceFailed  = "failed"
	silenceForeign = "foreign"
)

var silenceActions = []string{silenceCreated, silenceExtended, silenceExpired, silenceHumanExpired, silenceLapsed, silenceFailed, silenceForeign}

// silencer talks to Alertmanager's API v2 about the silences of incidents. It holds no state:
// which silence belongs to which incident is journaled in incident.Silences, and the comment
// names the incident so that a silence created just before a crash can be found again.
type silencer struct {
	api         silence.ClientService
	timeout     time.Duration
	duration    time.Duration
	createdBy   string
	alertRegex  string
	externalURL string
	labelName   string         // the alert label that names the cluster
	ackRE       *regexp.Regexp // a human's silence whose comment matches acknowledges
}

// newSilencer returns nil when no Alertmanager is configured (silencing disabled).
func newSilencer(cfg *config.Config) (*silencer, error) {
	am := cfg.Alertmanager
	if am.URL == "" {
		return nil, nil
	}
	u, err := url.Parse(am.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("alertmanager url %q: not an absolute URL", am.URL)
	}
	hc, err := commoncfg.NewClientFromConfig(am.HTTPClientConfig, "zmy-responder")
	if err != nil {
		return nil, fmt.Errorf("alertmanager http_config: %w", err)
	}
	rt := httptransport.NewWithClient(u.Host, path.Join("/", u.Path, "api/v2"), []string{u.Scheme}, hc)
	label := "cluster"
	if len(cfg.Webhook.ClusterLabels) > 0 {
		label = cfg.Webhook.ClusterLabels[0]
	}
	ackExpr := cfg.Silences.AckCommentRegex
	if ackExpr == "" {
		ackExpr = config.DefaultSilences.AckCommentRegex
	}
	ackRE, err := regexp.Compile(ackExpr)
	if err != nil {
		return nil, fmt.Errorf("silences.ack_comment_regex: %w", err)
	}
	return &silencer{
		api:         amclient.New(rt, strfmt.Default).Silence,
		timeout:     time.Duration(am.Timeout),
		duration:    time.Duration(am.SilenceDuration),
		createdBy:   am.CreatedBy,
		alertRegex:  am.AlertNameRegex,
		externalURL: strings.TrimSuffix(cfg.API.ExternalURL, "/"),
		labelName:   label,
		ackRE:       ackRE,
	}, nil
}

// incidentRE finds the incident id in a silence comment written by comment().
var incidentRE = regexp.MustCompile(`\bincident (\S+) `)

// comment names the incident and its URL; incidentRE parses it back.
func (s *silencer) comment(inc *incident.Incident) string {
	return fmt.Sprintf("zmy-responder incident %s (split-brain remediation of cluster %s): %s/api/v1/incidents/%s",
		inc.ID, inc.Cluster, s.externalURL, inc.ID)
}

// incidentOf returns the incident id named in a silence comment we wrote.
func incidentOf(comment string) (string, bool) {
	m := incidentRE.FindStringSubmatch(comment)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func (s *silencer) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Create posts a new silence for the incident, ending now+silence_duration.
func (s *silencer) Create(ctx context.Context, inc *incident.Incident, now time.Time) (string, time.Time, error) {
	t, f := true, false
	ends := now.Add(s.duration)
	sil := models.Silence{
		Comment:   ptr(s.comment(inc)),
		CreatedBy: ptr(s.createdBy),
		StartsAt:  ptr(strfmt.DateTime(now)),
		EndsAt:    ptr(strfmt.DateTime(ends)),
		Matchers: models.Matchers{
			{Name: ptr(s.labelName), Value: ptr(inc.Cluster), IsRegex: &f, IsEqual: &t},
			{Name: ptr("alertname"), Value: ptr(s.alertRegex), IsRegex: &t, IsEqual: &t},
		},
	}
	id, err := s.post(ctx, "", sil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create silence for %s: %w", inc.ID, err)
	}
	return id, ends, nil
}

// Extend moves the silence's end to now+silence_duration. It re-posts the silence as stored,
// same id, matchers and start, which Alertmanager updates in place. errSilenceGone says it is
// no longer active (a human expired it).
func (s *silencer) Extend(ctx context.Context, id string, now time.Time) (string, time.Time, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("extend silence %s: %w", id, err)
	}
	if st := state(cur); st == "expired" {
		// The time it ended says how: lapsed at the end we gave it, or expired early by a human.
		return "", time.Time(deref(cur.EndsAt)), fmt.Errorf("extend silence %s: %w", id, errSilenceGone)
	}
	ends := now.Add(s.duration)
	cur.EndsAt = ptr(strfmt.DateTime(ends))
	newID, err := s.post(ctx, id, cur.Silence)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("extend silence %s: %w", id, err)
	}
	return newID, ends, nil
}

var errSilenceGone = errors.New("silence no longer active")

// Expire ends the silence now; one that is already expired or unknown counts as done.
func (s *silencer) Expire(ctx context.Context, id string) error {
	cctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.api.DeleteSilence(silence.NewDeleteSilenceParamsWithContext(cctx).WithSilenceID(strfmt.UUID(id)))
	if err == nil {
		return nil
	}
	var nf *silence.DeleteSilenceNotFound
	if errors.As(err, &nf) {
		return nil
	}
	// Alertmanager answers 500 for a silence that is already expired: look before failing.
	if cur, gerr := s.get(ctx, id); gerr == nil && state(cur) == "expired" {
		return nil
	}
	return fmt.Errorf("expire silence %s: %w", id, err)
}

// List returns every silence Alertmanager knows (active, pending and expired).
func (s *silencer) List(ctx context.Context) ([]*models.GettableSilence, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.api.GetSilences(silence.NewGetSilencesParamsWithContext(cctx))
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	return res.Payload, nil
}

// Find returns the live silence we created for the incident, if Alertmanager has one: a
// silence created just before a crash is adopted rather than duplicated.
func (s *silencer) Find(ctx context.Context, cluster, incID string) (*models.GettableSilence, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, sil := range all {
		if s.ours(sil) && state(sil) != "expired" && s.clusterOf(sil) == cluster {
			if id, ok := incidentOf(deref(sil.Comment)); ok && id == incID {
				return sil, nil
			}
		}
	}
	return nil, nil
}

// clusterOf is the cluster our silence is scoped to (its equality matcher on the cluster
// label): incident ids are per journal, so another deployment sharing this Alertmanager and
// this created_by may have an incident with the same id for another cluster.
func (s *silencer) clusterOf(sil *models.GettableSilence) string {
	for _, m := range sil.Matchers {
		if deref(m.Name) == s.labelName && !deref(m.IsRegex) && (m.IsEqual == nil || *m.IsEqual) {
			return deref(m.Value)
		}
	}
	return ""
}

// foreignSilence is a silence someone else created that covers the incident's alert.
type foreignSilence struct {
	id, by, comment string
	ends            time.Time
}

// humanSilences is what humans did with silences around an incident.
type humanSilences struct {
	// takeover is an active silence someone else created that covers the incident's alert and
	// does not say it only acknowledges: a human took over.
	takeover *foreignSilence
	// acks are active covering silences whose comment acknowledges ("ACK! …").
	acks []foreignSilence
	// expired lists our silences of the incident that are expired, with when they ended (by a
	// human, unless we journaled expiring them or they lapsed at the end we gave them).
	expired []endedSilence
}

// endedSilence is one of our silences that Alertmanager says is expired.
type endedSilence struct {
	id   string
	ends time.Time
}

// Humans reads every silence once and says what humans did: took over, acknowledged, or
// expired the incident's silence.
func (s *silencer) Humans(ctx context.Context, inc *incident.Incident) (humanSilences, error) {
	all, err := s.List(ctx)
	if err != nil {
		return humanSilences{}, err
	}
	return s.classify(all, inc), nil
}

// classify is Humans without the call: a pure reading of Alertmanager's silences.
func (s *silencer) classify(all []*models.GettableSilence, inc *incident.Incident) humanSilences {
	var h humanSilences
	lset := s.alertLabels(inc)
	for _, sil := range all {
		if s.ours(sil) {
			if id, ok := incidentOf(deref(sil.Comment)); ok && id == inc.ID && state(sil) == "expired" {
				h.expired = append(h.expired, endedSilence{id: deref(sil.ID), ends: time.Time(deref(sil.EndsAt))})
			}
			continue
		}
		if state(sil) != "active" || !covers(sil, lset) {
			continue
		}
		f := foreignSilence{id: deref(sil.ID), by: deref(sil.CreatedBy), comment: deref(sil.Comment)}
		if sil.EndsAt != nil {
			f.ends = time.Time(*sil.EndsAt)
		}
		if s.ackRE.MatchString(f.comment) {
			h.acks = append(h.acks, f)
		} else if h.takeover == nil {
			h.takeover = &f
		}
	}
	return h
}

// Foreign returns an active silence that covers the incident's alert, that we did not create
// and that is not an acknowledgement: a human took over.
func (s *silencer) Foreign(ctx context.Context, inc *incident.Incident) (*foreignSilence, error) {
	h, err := s.Humans(ctx, inc)
	return h.takeover, err
}

// alertLabels is the label set of the incident's alert as Alertmanager would match it.
func (s *silencer) alertLabels(inc *incident.Incident) map[string]string {
	lset := map[string]string{}
	for i := len(inc.Alerts) - 1; i >= 0; i-- {
		if inc.Alerts[i].Status == "firing" || i == 0 {
			for k, v := range inc.Alerts[i].Labels {
				lset[k] = v
			}
			break
		}
	}
	if _, ok := lset["alertname"]; !ok {
		lset["alertname"] = inc.Alertname
	}
	if _, ok := lset[s.labelName]; !ok {
		lset[s.labelName] = inc.Cluster
	}
	return lset
}

func (s *silencer) ours(sil *models.GettableSilence) bool { return deref(sil.CreatedBy) == s.createdBy }

// covers reports whether every matcher of the silence matches the label set.
func covers(sil *models.GettableSilence, lset map[string]string) bool {
	if len(sil.Matchers) == 0 {
		return false
	}
	for _, m := range sil.Matchers {
		t := labels.MatchEqual
		eq := m.IsEqual == nil || *m.IsEqual
		switch {
		case deref(m.IsRegex) && eq:
			t = labels.MatchRegexp
		case deref(m.IsRegex):
			t = labels.MatchNotRegexp
		case !eq:
			t = labels.MatchNotEqual
		}
		lm, err := labels.NewMatcher(t, deref(m.Name), deref(m.Value))
		if err != nil || !lm.Matches(lset[deref(m.Name)]) {
			return false
		}
	}
	return true
}

func (s *silencer) get(ctx context.Context, id string) (*models.GettableSilence, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.api.GetSilence(silence.NewGetSilenceParamsWithContext(cctx).WithSilenceID(strfmt.UUID(id)))
	if err != nil {
		return nil, fmt.Errorf("get silence %s: %w", id, err)
	}
	return res.Payload, nil
}

func (s *silencer) post(ctx context.Context, id string, sil models.Silence) (string, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.api.PostSilences(silence.NewPostSilencesParamsWithContext(cctx).
		WithSilence(&models.PostableSilence{ID: id, Silence: sil}))
	if err != nil {
		return "", err
	}
	return res.Payload.SilenceID, nil
}

func state(sil *models.GettableSilence) string {
	if sil.Status == nil {
		return ""
	}
	return deref(sil.Status.State)
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
