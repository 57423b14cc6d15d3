// Package deploy_test checks the chart's monitoring files against the
// metrics the server really exports: every query of the Grafana dashboard
// (helm/viewer-session/files/dashboard.json), every alert expression
// (helm/viewer-session/files/alerts.yaml) and every series of the alerts'
// promtool tests (helm/tests/alerts_test.yaml) may name only metrics that
// the server's collectors register, so that a misspelled or renamed metric
// fails here instead of leaving a panel empty or an alert silent.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/acme/viewersession/metrics"
	"github.com/acme/viewersession/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	dashboardFile = "helm/viewer-session/files/dashboard.json"
	alertsFile    = "helm/viewer-session/files/alerts.yaml"
	alertTestFile = "helm/tests/alerts_test.yaml"
)

// capture is a Registerer that records what it registers.
type capture struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (c *capture) Register(col prometheus.Collector) error {
	c.collectors = append(c.collectors, col)
	return c.Registry.Register(col)
}

func (c *capture) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

var fqName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// exported returns every series name a query can use, as the server
// registers them in cmd/server: the Go and process collectors, the
// service's metrics and the gRPC server metrics of its interceptors.
// Histograms give name_bucket, name_sum and name_count, summaries name,
// name_sum and name_count. It fails the test when a collector's type
// cannot be told.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := &capture{Registry: prometheus.NewRegistry()}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.New(reg)
	service.NewInterceptors(slog.New(slog.DiscardHandler), reg)

	types := map[string]dto.MetricType{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		types[f.GetName()] = f.GetType()
	}
	// Vectors without a child yet gather nothing: take their names from
	// their descriptions and their types from their Go types.
	for _, col := range reg.collectors {
		var typ dto.MetricType
		switch col.(type) {
		case *prometheus.CounterVec:
			typ = dto.MetricType_COUNTER
		case *prometheus.GaugeVec:
			typ = dto.MetricType_GAUGE
		case *prometheus.HistogramVec:
			typ = dto.MetricType_HISTOGRAM
		case *prometheus.SummaryVec:
			typ = dto.MetricType_SUMMARY
		default:
			typ = -1
		}
		descs := make(chan *prometheus.Desc, 1024) // more than any collector describes
		col.Describe(descs)
		close(descs)
		for d := range descs {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			if _, ok := types[m[1]]; ok {
				continue
			}
			if typ < 0 {
				t.Fatalf("%s (%T) gathered nothing and its type is unknown: teach exported() its type", m[1], col)
			}
			types[m[1]] = typ
		}
	}
	names := map[string]bool{}
	for n, typ := range types {
		switch typ {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	return names
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasource              `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// query is one PromQL expression and where it comes from.
type query struct {
	where, expr string
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardQueries returns every query of the dashboard: the panels'
// targets and the query variables (label_values(<selector>, <label>): the
// selector).
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("panel %q (%s)", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, q.Query)
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	return qs
}

// alertQueries returns the expr of every rule in the rule file. The file
// is read line by line (the service's module has no YAML parser): an
// `expr: |` block is every following line indented deeper than `expr:`.
// The number of exprs must equal the number of `- alert:` lines.
func alertQueries(t *testing.T) []query {
	t.Helper()
	f, err := os.Open(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var qs []query
	alerts := 0
	var name string
	var block *strings.Builder
	blockIndent := 0
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if block != nil {
			if strings.TrimSpace(line) == "" || indent(line) > blockIndent {
				block.WriteString(line + "\n")
				continue
			}
			qs = append(qs, query{"alert " + name, block.String()})
			block = nil
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "- alert:"):
			alerts++
			name = strings.TrimSpace(strings.TrimPrefix(trimmed, "- alert:"))
		case trimmed == "expr: |":
			block, blockIndent = &strings.Builder{}, indent(line)
		case strings.HasPrefix(trimmed, "expr:"):
			qs = append(qs, query{"alert " + name, strings.TrimPrefix(trimmed, "expr:")})
		}
	}
	if block != nil {
		qs = append(qs, query{"alert " + name, block.String()})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if alerts == 0 || len(qs) != alerts {
		t.Fatalf("%s: %d alerts, %d exprs read; want one expr per alert", alertsFile, alerts, len(qs))
	}
	return qs
}

// checkQueries fails the test for every metric a query names that the
// server does not export, and returns the metrics used.
func checkQueries(t *testing.T, names map[string]bool, qs []query) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, q := range qs {
		ms, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %q", q.where, err, q.expr)
			continue
		}
		if len(ms) == 0 {
			t.Errorf("%s: names no metric: %q", q.where, q.expr)
		}
		for _, m := range ms {
			used[m] = true
			if !names[m] {
				t.Errorf("%s: %s is not a metric the server exports (%s)", q.where, m, suggest(m, names))
			}
		}
	}
	return used
}

// suggest names the exported metrics closest to m.
func suggest(m string, names map[string]bool) string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for n := range names {
		cs = append(cs, cand{n, distance(m, n)})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d < cs[j].d || cs[i].d == cs[j].d && cs[i].name < cs[j].name })
	if len(cs) == 0 || cs[0].d > len(m)/2 {
		return "no close name"
	}
	return "did you mean " + cs[0].name + "?"
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	names := exported(t)
	d := readDashboard(t)
	qs := dashboardQueries(t, d)
	if len(qs) < 10 {
		t.Fatalf("%s: %d queries; want the dashboard's panels", dashboardFile, len(qs))
	}
	used := checkQueries(t, names, qs)

	// Every service metric has a panel: a new metric needs one.
	var missing []string
	for n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if !strings.HasPrefix(n, "vss_") {
			continue
		}
		if !used[n] && !used[base] && !used[base+"_bucket"] && !used[base+"_count"] {
			missing = append(missing, base)
		}
	}
	slices.Sort(missing)
	if missing = slices.Compact(missing); len(missing) > 0 {
		t.Errorf("%s has no panel for %v", dashboardFile, missing)
	}
}

func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: want both", d.Title, d.UID)
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
			}
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

func TestAlertsNameExportedMetrics(t *testing.T) {
	checkQueries(t, exported(t), alertQueries(t))
}

// The promtool tests must feed the alerts series the server can produce:
// a test on a misspelled series passes against an alert on the same
// misspelling.
func TestAlertTestSeriesAreExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(alertTestFile)
	if err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`(?m)^\s*- series: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
	ms := series.FindAllStringSubmatch(string(b), -1)
	if len(ms) == 0 {
		t.Fatalf("%s: no input series", alertTestFile)
	}
	for _, m := range ms {
		if !names[m[1]] {
			t.Errorf("%s: series %s is not a metric the server exports (%s)", alertTestFile, m[1], suggest(m[1], names))
		}
	}
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		give    string
		want    []string
		wantErr string
	}{
		{give: `sum by (state) (vss_sessions{namespace=~"$namespace", job=~"$job"})`, want: []string{"vss_sessions"}},
		{give: `histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="}"}[$__rate_interval])))`, want: []string{"a_bucket"}},
		{give: `sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 0.05 and sum(c) >= 20`, want: []string{"a_total", "b_total", "c"}},
		{give: `x or 0 * sum without (pod) (y) unless on (job) group_left (pod) z offset 5m`, want: []string{"x", "y", "z"}},
		{give: `sum(vss_sessions) or vector(0)`, want: []string{"vss_sessions"}},
		{give: `rate(a[5m:1m])`, want: []string{"a"}},
		{give: `sum(rate(x[5m]) bool > 1)`, want: []string{"x"}},
		{give: `frobnicate(x)`, wantErr: `unknown function "frobnicate"`},
		{give: `{__name__="x"}`, wantErr: "selector without a metric name"},
		{give: `sum(x{a="b"`, wantErr: "unbalanced"},
		{give: `x{a="b}`, wantErr: "unterminated string"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := metricNames(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("metricNames() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("metricNames() error = %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("metricNames() = %q, want %q", got, tt.want)
			}
		})
	}
}

// functions are PromQL's functions and aggregation operators.
var functions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time
		ceil changes clamp clamp_max clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week
		day_of_year deg delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
		histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta
		increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
		min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate resets round
		scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
		sum_over_time tan tanh time timestamp vector year
		sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio`) {
		functions[f] = true
	}
}

// keywords are PromQL words that are neither metrics nor functions.
var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true, "Inf": true, "NaN": true}

// labelLists are the words followed by a parenthesized list of labels.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

var (
	word     = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	number   = regexp.MustCompile(`^[0-9.][0-9a-zA-Z._]*`) // numbers and durations
	variable = regexp.MustCompile(`^\$(\{[^}]*\}|[a-zA-Z0-9_]+)`)
)

// metricNames returns the metric names a PromQL expression selects, in
// order of first use. It is a lexer, not a parser: it skips strings,
// label matchers ({...}), ranges ([...]), label lists (by (...)) and
// Grafana variables, takes a word followed by "(" for a function (which
// must be a PromQL one) and any other word that is not a keyword for a
// metric name.
func metricNames(expr string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	depth := 0 // parentheses
	prevWord := false
	s := expr
	skipString := func() error {
		q := s[0]
		for i := 1; i < len(s); i++ {
			switch {
			case s[i] == '\\' && q != '`':
				i++
			case s[i] == q:
				s = s[i+1:]
				return nil
			}
		}
		return fmt.Errorf("unterminated string")
	}
	// skipUntil skips to the closing byte, over strings.
	skipUntil := func(closing byte) error {
		for s = s[1:]; len(s) > 0; {
			switch c := s[0]; {
			case c == closing:
				s = s[1:]
				return nil
			case c == '"' || c == '\'' || c == '`':
				if err := skipString(); err != nil {
					return err
				}
			default:
				s = s[1:]
			}
		}
		return fmt.Errorf("unbalanced %q", closing)
	}
	for len(s) > 0 {
		c := s[0]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			s = s[1:]
			continue
		case c == '"' || c == '\'' || c == '`':
			if err := skipString(); err != nil {
				return nil, err
			}
		case c == '{':
			if !prevWord {
				return nil, fmt.Errorf("selector without a metric name")
			}
			if err := skipUntil('}'); err != nil {
				return nil, err
			}
		case c == '[':
			if err := skipUntil(']'); err != nil {
				return nil, err
			}
		case c == '(':
			depth++
			s = s[1:]
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ')'")
			}
			s = s[1:]
		case c == '$':
			// A Grafana variable outside a string: $name or ${name}.
			if m := variable.FindString(s); m != "" {
				s = s[len(m):]
			} else {
				s = s[1:]
			}
		case c >= '0' && c <= '9' || c == '.':
			m := number.FindString(s)
			s = s[len(m):]
		case word.MatchString(s):
			w := word.FindString(s)
			s = s[len(w):]
			rest := strings.TrimLeft(s, " \t\n\r")
			switch {
			case labelLists[w]:
				s = rest
				if strings.HasPrefix(s, "(") {
					if err := skipUntil(')'); err != nil {
						return nil, err
					}
				}
				prevWord = false
				continue
			case keywords[w]:
				prevWord = false
				continue
			case functions[w] && (strings.HasPrefix(rest, "by") || strings.HasPrefix(rest, "without")):
				prevWord = false // an aggregation: sum by (le) (...)
				continue
			case strings.HasPrefix(rest, "("):
				if !functions[w] {
					return nil, fmt.Errorf("unknown function %q", w)
				}
				prevWord = false
				continue
			}
			if !seen[w] {
				seen[w] = true
				names = append(names, w)
			}
			prevWord = true
			continue
		default:
			s = s[1:] // operators, commas
		}
		prevWord = false
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	return names, nil
}
