package authz

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// How the pages name patients: Patient/{id} read from the FHIR server of
// Settings.PatientNames, cached briefly.
const (
	// patientNameTTL is how long a patient read from the FHIR server is
	// shown without reading it again.
	patientNameTTL = time.Minute
	// patientNameFailureTTL is how long a patient that could not be read
	// is shown by id before the server is asked again, so that a server
	// that is down does not slow every page.
	patientNameFailureTTL = 10 * time.Second
	// patientNamesTimeout bounds the reads of one page.
	patientNamesTimeout = 3 * time.Second
	// patientNamesParallel is how many patients of one page are read at
	// once.
	patientNamesParallel = 8
	// patientNameCacheMax bounds the cache; past it, it is emptied.
	patientNameCacheMax = 4096
	// patientFilterThreshold is the list length above which the picker
	// and the launcher offer a filter box.
	patientFilterThreshold = 10
)

// patientNamesUnavailable is the notice shown when some patients could
// not be read from the FHIR server and are shown by id.
const patientNamesUnavailable = "Patient details could not be read from the FHIR server just now; " +
	"those patients are shown by their record id only. Check the id before you continue."

// patientNameCache holds patients read from the FHIR server by id, and
// failed reads, for a short while. It is safe for concurrent use.
type patientNameCache struct {
	mu      sync.Mutex
	entries map[string]patientNameEntry
}

// patientNameEntry is one cached read: the patient, or ok false for a
// failed read, until expires.
type patientNameEntry struct {
	choice  patientChoice
	ok      bool
	expires time.Time
}

// get returns the cached read of id, if still fresh.
func (c *patientNameCache) get(id string, now time.Time) (patientNameEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[id]
	if !found || !now.Before(e.expires) {
		return patientNameEntry{}, false
	}
	return e, true
}

// put caches a read of id.
func (c *patientNameCache) put(id string, e patientNameEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= patientNameCacheMax {
		c.entries = make(map[string]patientNameEntry)
	}
	c.entries[id] = e
}

// describePatients names the patients ids for a page: each read from the
// FHIR server of Settings.PatientNames (cached), or by id alone when
// there is none, the read fails or the id is not a FHIR id. notice is
// set when a read failed.
func (s *Server) describePatients(ctx context.Context, ids []string) (out []patientChoice, notice string) {
	out = make([]patientChoice, len(ids))
	if s.cfg.PatientNames == nil {
		for i, id := range ids {
			out[i] = unnamedPatient(id)
		}
		return out, ""
	}
	ctx, cancel := context.WithTimeout(ctx, patientNamesTimeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		failed sync.Once
		slots  = make(chan struct{}, patientNamesParallel)
	)
	for i, id := range ids {
		now := time.Now()
		if e, ok := s.patientNames.get(id, now); ok {
			out[i] = e.choice
			if !e.ok {
				failed.Do(func() { notice = patientNamesUnavailable })
			}
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			c, err := s.readPatient(ctx, s.cfg.PatientNames.String(), id)
			if err != nil {
				s.logger.Warn("a patient's name could not be read from the FHIR server", zap.String("patient", id), zap.Error(err))
				out[i] = unnamedPatient(id)
				s.patientNames.put(id, patientNameEntry{choice: out[i], expires: time.Now().Add(patientNameFailureTTL)})
				return
			}
			out[i] = *c
			s.patientNames.put(id, patientNameEntry{choice: *c, ok: true, expires: time.Now().Add(patientNameTTL)})
		}()
	}
	wg.Wait()
	for _, c := range out {
		if !c.Known && s.cfg.PatientNames != nil && fhirIDPattern.MatchString(c.ID) {
			notice = patientNamesUnavailable
		}
	}
	return out, notice
}

// unnamedPatient is a patient known by id only.
func unnamedPatient(id string) patientChoice {
	return patientChoice{ID: id, Label: id}
}

// filterPatients keeps the patients whose name, id, birth date or MRN
// contains q, ignoring case.
func filterPatients(ps []patientChoice, q string) []patientChoice {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return ps
	}
	var out []patientChoice
	for _, p := range ps {
		for _, field := range []string{p.Name, p.ID, p.BirthDate, p.MRN} {
			if strings.Contains(strings.ToLower(field), q) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
