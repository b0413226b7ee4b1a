package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"ulp/fleet"
)

// Config is ulpfleet's settings, read once per command from flags,
// ULPFLEET_* environment variables and the config file. Each setting has one
// name: the flag name, the config file key, and (upper-cased, '-' → '_',
// prefixed ULPFLEET_) the environment variable.
type Config struct {
	Inventory         string        `mapstructure:"inventory"`
	Limit             string        `mapstructure:"limit"`
	Parallel          int           `mapstructure:"parallel"`
	UploadParallel    int           `mapstructure:"upload-parallel"`
	Canary            []string      `mapstructure:"canary"`
	Batch             []string      `mapstructure:"batch"`
	MaxFailures       int           `mapstructure:"max-failures"`
	MaxFail           string        `mapstructure:"max-fail"`
	AutoRevert        bool          `mapstructure:"auto-revert"`
	HealthCheck       string        `mapstructure:"health-check"`
	Timeout           time.Duration `mapstructure:"timeout"`
	ConnectTimeout    time.Duration `mapstructure:"connect-timeout"`
	KnownHosts        []string      `mapstructure:"known-hosts"`
	Identity          []string      `mapstructure:"identity"`
	User              string        `mapstructure:"user"`
	Jump              string        `mapstructure:"jump"`
	StagingDir        string        `mapstructure:"staging-dir"`
	Sudo              bool          `mapstructure:"sudo"`
	AcceptNewHostKeys bool          `mapstructure:"accept-new-host-keys"`
	JSON              bool          `mapstructure:"json"`
	Agent             string        `mapstructure:"agent"`
	Results           string        `mapstructure:"results"`
	Trusted           string        `mapstructure:"trusted"`
	Activate          bool          `mapstructure:"activate"`
	Verbose           bool          `mapstructure:"verbose"`
}

func addSettingFlags(f *pflag.FlagSet) {
	f.String("config", "", "config file (YAML; default ./ulpfleet.yaml, then ~/.config/ulpfleet/config.yaml)")
	f.StringP("inventory", "i", "", "inventory `FILE`: Ansible YAML or INI, or the JSON of ansible-inventory --list")
	f.StringP("limit", "l", "", "select hosts: group or host names and globs, a:b (or), a:&b (and), a:!b (except); @FILE: the patterns listed in FILE, one a line")
	f.Int("parallel", fleet.DefaultParallel, "hosts worked on at once")
	f.Int("upload-parallel", 0, "uploads in flight at once, across all hosts (0: as many as --parallel)")
	f.StringSlice("canary", []string{"1"}, "canary waves before the rest: host counts, percentages or group:NAME (0: none)")
	f.StringSlice("batch", nil, "split the hosts after the canaries into batches: counts or percentages, the last repeating (default: one batch)")
	f.Int("max-failures", 0, "failed hosts tolerated before the rollout stops")
	f.String("health-check", "", "shell `COMMAND` run on each host after apply or revert; failing fails the host (and the canary gate)")
	f.Bool("auto-revert", false, "when the rollout stops, revert the containers on the canary hosts that ran them")
	f.String("max-fail", "", "also stop after a canary wave or batch in which more than this percentage of its hosts failed (e.g. 10%)")
	f.Duration("timeout", 5*time.Minute, "bound on the work on one host (0: none)")
	f.Duration("connect-timeout", 10*time.Second, "bound on the TCP connect to a host")
	f.StringSlice("known-hosts", []string{defaultKnownHosts()}, "known_hosts files")
	f.StringSlice("identity", nil, "private key files (default: ssh-agent)")
	f.String("user", "", "login user when the inventory has no ansible_user (default root)")
	f.String("jump", "", "reach hosts through the SSH jump host `[USER@]HOST[:PORT]` (ProxyJump); the host variable "+fleet.JumpVar+" overrides it ('none': direct)")
	f.String("staging-dir", fleet.DefaultStagingDir, "folder on hosts for the agent and containers (exec allowed)")
	f.Bool("sudo", false, "run remote commands with sudo -n")
	f.Bool("accept-new-host-keys", false, "trust unknown hosts on first use and record their keys (changed keys are still refused)")
	f.Bool("json", false, "print JSON (NDJSON records for rollouts)")
	f.String("agent", "", "agent binary to upload (default: the one embedded in ulpfleet)")
	f.String("results", defaultResults(), "every apply, revert and push saves its NDJSON results to `FILE` ('' for none); retry reads it")
	f.BoolP("verbose", "v", false, "log debug details on stderr")
	f.Bool("activate", false, "apply and revert also update each host's patch-on-start folder (ulp trigger --activate), so processes started there later get the same change")
	f.String("trusted", "", "require signed containers: apply and push check each against the keys of `DIR`/*.pub here before any upload, and the agent checks again against DIR on each host")
}

func defaultKnownHosts() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "known_hosts")
}

// loadSettings builds the command's own viper instance (never the global
// one), reads the settings into a.cfg and checks them.
func (a *app) loadSettings(cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("ULPFLEET")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	flags := cmd.Root().PersistentFlags()
	var bindErr error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" {
			bindErr = errors.Join(bindErr, v.BindPFlag(f.Name, f))
		}
	})
	if bindErr != nil {
		return bindErr
	}
	read := "" // the config file read
	file, _ := flags.GetString("config")
	if file == "" {
		file = os.Getenv("ULPFLEET_CONFIG")
	}
	explicit := file != ""
	if !explicit {
		for _, c := range defaultConfigFiles() {
			if _, err := os.Stat(c); err == nil {
				file = c
				break
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if filepath.Ext(file) == "" {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return usageError(fmt.Errorf("config %s: %w", file, err))
		}
		read = file
	}
	src := settingSource(flags, v, read)
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return usageError(decodeErrors(v, src, read, err))
	}
	if err := cfg.validate(src); err != nil {
		return usageError(err)
	}
	a.cfg = cfg
	a.defaultResults = src("results") == "--results" && !flags.Lookup("results").Changed
	// Info logs (a line per host) stand in for the progress display when
	// stdout is not a terminal; on a terminal the progress line shows them.
	level := slog.LevelInfo
	if a.tty {
		level = slog.LevelWarn
	}
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	if read != "" {
		a.log.Debug("settings", "config", read)
	}
	return nil
}

// settingSource returns a function naming where a setting's value came
// from, for error messages: "--key" (a flag, or the default),
// "ULPFLEET_KEY" (the environment) or "key in FILE" (the config file).
func settingSource(flags *pflag.FlagSet, v *viper.Viper, file string) func(key string) string {
	return func(key string) string {
		if f := flags.Lookup(key); f != nil && f.Changed {
			return "--" + key
		}
		env := "ULPFLEET_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		if _, ok := os.LookupEnv(env); ok {
			return env
		}
		if file != "" && v.InConfig(key) {
			return key + " in " + file
		}
		return "--" + key
	}
}

// decodeErrors explains a failed decode of the settings setting by
// setting, naming where each bad value came from; err is the decoder's own
// error, returned when no single setting explains it.
func decodeErrors(v *viper.Viper, src func(string) string, file string, err error) error {
	var errs []error
	known := map[string]bool{}
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		key := f.Tag.Get("mapstructure")
		known[key] = true
		if v.UnmarshalKey(key, reflect.New(f.Type).Interface()) != nil {
			want := map[reflect.Type]string{reflect.TypeFor[int](): "a whole number", reflect.TypeFor[bool](): "true or false",
				reflect.TypeFor[time.Duration](): "a duration such as 90s or 5m", reflect.TypeFor[[]string](): "a list of strings"}[f.Type]
			if want == "" {
				want = "a string"
			}
			errs = append(errs, fmt.Errorf("%s: %q is not %s", src(key), fmt.Sprint(v.Get(key)), want))
		}
	}
	for _, key := range v.AllKeys() {
		if !known[key] && !known[strings.SplitN(key, ".", 2)[0]] && key != "config" {
			errs = append(errs, fmt.Errorf("config %s: unknown setting %q", file, key))
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("settings: %w", err)
	}
	return errors.Join(errs...)
}

// defaultResults is $XDG_STATE_HOME/ulpfleet/last-run.ndjson (state home
// ~/.local/state by default), or "" without a home folder.
func defaultResults() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "ulpfleet", "last-run.ndjson")
}

func defaultConfigFiles() []string {
	files := []string{"ulpfleet.yaml"}
	if dir, err := os.UserConfigDir(); err == nil {
		files = append(files, filepath.Join(dir, "ulpfleet", "config.yaml"))
	}
	return files
}

// maxFailPercent parses --max-fail ("10%" or "10"; empty: 0, off).
func (c *Config) maxFailPercent() (float64, error) {
	if c.MaxFail == "" {
		return 0, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(c.MaxFail, "%"), 64)
	if err != nil || p < 0 || p > 100 {
		return 0, fmt.Errorf("%q: want a percentage from 0 to 100", c.MaxFail)
	}
	return p, nil
}

// validate reports every invalid setting, naming it as src does.
func (c *Config) validate(src func(key string) string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{src(key)}, args...)...))
	}
	if c.Parallel < 1 {
		bad("parallel", "must be at least 1, not %d", c.Parallel)
	}
	if c.UploadParallel < 0 {
		bad("upload-parallel", "must not be negative")
	}
	if c.MaxFailures < 0 {
		bad("max-failures", "must not be negative")
	}
	if _, err := c.maxFailPercent(); err != nil {
		bad("max-fail", "%v", err)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if c.ConnectTimeout < 0 {
		bad("connect-timeout", "must not be negative")
	}
	if c.StagingDir == "" || !path.IsAbs(c.StagingDir) || path.Clean(c.StagingDir) != c.StagingDir {
		bad("staging-dir", "%q must be a clean absolute path", c.StagingDir)
	}
	if c.Jump != "" {
		if _, _, err := fleet.ParseJump(c.Jump); err != nil {
			bad("jump", "%v", err)
		}
	}
	if strings.ContainsAny(c.User, " \t\n:@") {
		bad("user", "%q is not a user name", c.User)
	}
	return errors.Join(errs...)
}
