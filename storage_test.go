package smartauth

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// storageHead opens a smart_auth block with its required options: the
// storage option under test is on line 4.
const storageHead = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"

func TestCaddyfileStorageForms(t *testing.T) {
	for _, tc := range []struct {
		name, line, dir, dsn string
	}{
		{"badger directory", "storage /var/lib/smart", "/var/lib/smart", ""},
		{"badger placeholder", "storage {env.SMART_DIR}", "{env.SMART_DIR}", ""},
		{"postgres env", "storage postgres {env.SMART_AUTH_DSN}", "", "{env.SMART_AUTH_DSN}"},
		{"postgres file", "storage postgres {file./run/secrets/dsn}", "", "{file./run/secrets/dsn}"},
		{"postgres quoted keyword/value", `storage postgres "host=db dbname=smartauth sslmode=verify-full"`, "", "host=db dbname=smartauth sslmode=verify-full"},
		{"postgres url", "storage postgres postgres://db.internal/smartauth?sslmode=verify-full", "", "postgres://db.internal/smartauth?sslmode=verify-full"},
		{"badger directory named postgres", "storage ./postgres", "./postgres", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parse(t, storageHead+" "+tc.line+"\n}")
			if err != nil {
				t.Fatal(err)
			}
			if s.Storage != tc.dir || s.StoragePostgres != tc.dsn {
				t.Fatalf("storage %q storage_postgres %q, want %q %q", s.Storage, s.StoragePostgres, tc.dir, tc.dsn)
			}
			// The JSON holds what the Caddyfile said, no more.
			js, _ := json.Marshal(s)
			if tc.dsn != "" && (!strings.Contains(string(js), `"storage_postgres":`) || strings.Contains(string(js), `"storage":`)) {
				t.Errorf("JSON %s", js)
			}
		})
	}
}

func TestCaddyfileStorageErrors(t *testing.T) {
	for _, tc := range []struct {
		name, lines, want string
	}{
		{"missing dsn", " storage postgres\n", "storage postgres: a DSN is required, best as a placeholder: storage postgres {env.SMART_AUTH_DSN}"},
		{"missing dsn names the line", " storage postgres\n", "at Testfile:4"},
		{"no value", " storage\n", "storage: a directory, or postgres and a DSN, is required, at Testfile:4"},
		{"both forms", " storage /var/lib/smart\n storage postgres {env.DSN}\n", "storage already specified, at Testfile:5"},
		{"both forms, postgres first", " storage postgres {env.DSN}\n storage /var/lib/smart\n", "storage already specified, at Testfile:5"},
		{"unquoted keyword/value dsn", " storage postgres host=db dbname=x\n", "storage postgres: one DSN expected, got 2 arguments (quote a keyword/value DSN), at Testfile:4"},
		{"two directories", " storage /a /b\n", `storage: one directory expected, got also "/b"`},
		{"url as a directory", " storage postgres://db/x\n", "storage: the value is a PostgreSQL URL, not a directory: write storage postgres <dsn>, at Testfile:4"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectParseError(t, storageHead+tc.lines+"}", tc.want) })
	}
	// An error about a DSN never repeats it.
	_, err := parse(t, storageHead+" storage postgres postgres://u:s3cret-pw@db/x extra\n}")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error %v: want one without the DSN", err)
	}
}

func TestValidateStorageJSON(t *testing.T) {
	const base = `"issuer":"https://a.example","fhir_base":"https://f.example"`
	for _, tc := range []struct {
		name, js, want string
	}{
		{"badger", `{` + base + `,"storage":"/var/lib/smart"}`, ""},
		{"postgres", `{` + base + `,"storage_postgres":"{env.SMART_AUTH_DSN}"}`, ""},
		{"both", `{` + base + `,"storage":"/var/lib/smart","storage_postgres":"{env.SMART_AUTH_DSN}"}`, "storage and storage_postgres: give one store, not both"},
		{"url as a directory", `{` + base + `,"storage":"postgresql://db/x"}`, "storage: the value is a PostgreSQL URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s SmartAuth
			if err := json.Unmarshal([]byte(tc.js), &s); err != nil {
				t.Fatal(err)
			}
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// observed returns a SmartAuth whose logger records what it logs.
func observed(dsn string) (*SmartAuth, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return &SmartAuth{StoragePostgres: dsn, logger: zap.New(core)}, logs
}

func TestResolveDSN(t *testing.T) {
	const secretDSN = "postgres://app:s3cret-pw@db.internal/smartauth?sslmode=verify-full"
	t.Setenv("SMARTAUTH_TEST_DSN", secretDSN)
	file := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(file, []byte(secretDSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, configured, want string
		warn                   bool
	}{
		{"env placeholder", "{env.SMARTAUTH_TEST_DSN}", secretDSN, false},
		{"file placeholder, trailing newline", "{file." + file + "}", secretDSN, false},
		{"password from a placeholder", "postgres://app:{env.SMARTAUTH_TEST_PW}@db/x", "postgres://app:pw-from-env@db/x", false},
		{"literal url with password", "postgres://app:s3cret-pw@db/x", "postgres://app:s3cret-pw@db/x", true},
		{"literal url, password in query", "postgres://app@db/x?password=s3cret-pw", "postgres://app@db/x?password=s3cret-pw", true},
		{"literal keyword/value with password", "host=db user=app password=s3cret-pw", "host=db user=app password=s3cret-pw", true},
		{"literal without password", "host=/run/postgresql dbname=smartauth", "host=/run/postgresql dbname=smartauth", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SMARTAUTH_TEST_PW", "pw-from-env")
			s, logs := observed(tc.configured)
			got, err := s.resolveDSN()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("resolved to %q, want %q", got, tc.want)
			}
			warned := logs.FilterMessageSnippet("placeholder").Len() == 1
			if warned != tc.warn {
				t.Errorf("warning logged: %t, want %t", warned, tc.warn)
			}
			for _, e := range logs.All() {
				line := e.Message
				for _, f := range e.Context {
					line += " " + f.String
				}
				if strings.Contains(line, "s3cret-pw") || strings.Contains(line, "pw-from-env") {
					t.Errorf("the log holds the password: %s", line)
				}
			}
		})
	}
}

func TestResolveDSNErrorsHideTheDSN(t *testing.T) {
	s, _ := observed("{env.SMARTAUTH_TEST_UNSET_DSN}")
	if _, err := s.resolveDSN(); err == nil || !strings.Contains(err.Error(), "storage postgres: the DSN placeholder {env.SMARTAUTH_TEST_UNSET_DSN} is unset") {
		t.Fatalf("error %v", err)
	}
	// A value that is not one placeholder may hold a secret: the error
	// names none of it.
	s, _ = observed("postgres://app:s3cret-pw@db/{env.SMARTAUTH_TEST_UNSET_DSN}")
	if _, err := s.resolveDSN(); err == nil || strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(err.Error(), "SMARTAUTH_TEST_UNSET_DSN") {
		t.Fatalf("error %v", err)
	}
}

func TestUnreachablePostgresErrorHidesTheDSN(t *testing.T) {
	// A port nothing listens on: the connection is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s, logs := observed("postgres://app:s3cret-pw@127.0.0.1:" + strconv.Itoa(port) + "/smartauth?sslmode=disable&connect_timeout=5")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	_, err = s.acquireStore(ctx)
	if err == nil {
		t.Fatal("a store opened on a closed port")
	}
	if !strings.HasPrefix(err.Error(), "storage postgres: ") || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error %q: want one naming the option, without the password", err)
	}
	if s.pgKey != "" {
		t.Error("a failed open left a pool reference to release")
	}
	if err := s.releaseStore(); err != nil {
		t.Fatal(err)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "s3cret-pw") {
			t.Errorf("logged the password: %s", e.Message)
		}
	}
}

func TestDSNKeyDiffersPerDSN(t *testing.T) {
	a, b := dsnKey("host=a dbname=x"), dsnKey("host=b dbname=x")
	if a == b || a != dsnKey("host=a dbname=x") || strings.Contains(a, "host") {
		t.Fatalf("keys %q %q", a, b)
	}
}
