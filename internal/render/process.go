package render

import (
	"slices"
	"strings"
)

// The dotenv keys that change how a process runs. An app that sources a
// dotenv file (`set -a; . file`, as the README shows) exports every key of
// it to itself and to everything it starts, so whoever can write the
// secret's value would choose these too. They are refused unless the plan
// allows the exact key (plan.Secret.AllowKeys, from the pod's
// allow-keys-<name> annotation).
//
// The list takes the variables that, for nearly every process in a Linux
// container, whatever the app:
//
//   - load or run other code: the dynamic loader and glibc (LD_*, and the
//     variables glibc itself drops for setuid programs, unsecvars.h), the
//     shells (startup files, prompts that are expanded, exported
//     functions, options, IFS, PATH), the language runtimes' option and
//     module-path variables (Node.js, Python, Perl, Ruby, Java, .NET, PHP,
//     Go's GODEBUG, npm's config) and the commands that programs start
//     (EDITOR, PAGER, Git's and SSH's helpers);
//   - or change what a process trusts or where its traffic goes: CA
//     bundles, TLS key logs, OpenSSL's configuration, proxies.
//
// Names are compared exactly, as the loader and the shells compare them.
// Lower-case spellings are listed where programs read them: curl and most
// HTTP clients read the lower-case proxy variables, and zsh ties path,
// cdpath and fpath to PATH, CDPATH and FPATH. Variables that one app or
// library reads for its own settings (AWS_*, DATABASE_URL, ...) are not
// listed: what they may hold is that app's to judge.
var (
	// processKeyPrefixes: every key that starts with one of them.
	processKeyPrefixes = [...]string{
		"LD_",         // the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
		"BASH_",       // bash: BASH_ENV, BASH_FUNC_*, BASH_LOADABLES_PATH, BASH_XTRACEFD, ...
		"GLIBC_",      // GLIBC_TUNABLES
		"MALLOC_",     // glibc's malloc: MALLOC_TRACE writes a file, MALLOC_CHECK_, ...
		"CORECLR_",    // .NET profilers: CORECLR_ENABLE_PROFILING, CORECLR_PROFILER_PATH, ...
		"GIT_CONFIG",  // GIT_CONFIG, GIT_CONFIG_GLOBAL, GIT_CONFIG_COUNT, GIT_CONFIG_KEY_<n>, ...
		"NPM_CONFIG_", // npm reads its settings (script-shell, node-options) from the environment
		"npm_config_",
	}
	// processKeyNames, sorted (byte order) for a binary search.
	processKeyNames = [...]string{
		"ALL_PROXY",
		"BASHOPTS",
		"BROWSER",
		"CDPATH",
		"CLASSPATH",
		"CURL_CA_BUNDLE",
		"DOTNET_ADDITIONAL_DEPS",
		"DOTNET_STARTUP_HOOKS",
		"EDITOR",
		"ENV",
		"FPATH",
		"FTP_PROXY",
		"GCONV_PATH",
		"GETCONF_DIR",
		"GIT_ASKPASS",
		"GIT_EDITOR",
		"GIT_EXEC_PATH",
		"GIT_EXTERNAL_DIFF",
		"GIT_PAGER",
		"GIT_PROXY_COMMAND",
		"GIT_SSH",
		"GIT_SSH_COMMAND",
		"GIT_TEMPLATE_DIR",
		"GLOBIGNORE",
		"GODEBUG",
		"HOME",
		"HOSTALIASES",
		"HTTPS_PROXY",
		"HTTP_PROXY",
		"IFS",
		"JAVA_HOME",
		"JAVA_OPTS",
		"JAVA_TOOL_OPTIONS",
		"JDK_JAVA_OPTIONS",
		"LOCALDOMAIN",
		"LOCPATH",
		"NIS_PATH",
		"NLSPATH",
		"NODE_EXTRA_CA_CERTS",
		"NODE_OPTIONS",
		"NODE_PATH",
		"NODE_TLS_REJECT_UNAUTHORIZED",
		"NO_PROXY",
		"OPENSSL_CONF",
		"OPENSSL_ENGINES",
		"OPENSSL_MODULES",
		"PAGER",
		"PATH",
		"PERL5DB",
		"PERL5LIB",
		"PERL5OPT",
		"PERLLIB",
		"PHPRC",
		"PHP_INI_SCAN_DIR",
		"PROMPT_COMMAND",
		"PS1",
		"PS2",
		"PS3",
		"PS4",
		"PYTHONBREAKPOINT",
		"PYTHONEXECUTABLE",
		"PYTHONHOME",
		"PYTHONHTTPSVERIFY",
		"PYTHONINSPECT",
		"PYTHONPATH",
		"PYTHONPLATLIBDIR",
		"PYTHONSTARTUP",
		"PYTHONUSERBASE",
		"PYTHONWARNINGS",
		"REQUESTS_CA_BUNDLE",
		"RESOLV_HOST_CONF",
		"RES_OPTIONS",
		"RUBYLIB",
		"RUBYOPT",
		"SHELL",
		"SHELLOPTS",
		"SSH_ASKPASS",
		"SSLKEYLOGFILE",
		"SSL_CERT_DIR",
		"SSL_CERT_FILE",
		"TMPDIR",
		"TZDIR",
		"VISUAL",
		"_JAVA_OPTIONS",
		"all_proxy",
		"cdpath",
		"fpath",
		"ftp_proxy",
		"http_proxy",
		"https_proxy",
		"no_proxy",
		"path",
	}
)

// ProcessKey reports whether a dotenv key changes how a process runs, and
// so is refused unless the plan allows it (see processKeyNames).
func ProcessKey(key string) bool {
	if _, found := slices.BinarySearch(processKeyNames[:], key); found {
		return true
	}
	for _, p := range processKeyPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// ProcessKeys returns the refused names and the refused prefixes (each
// standing for every key that starts with it), for documentation and
// tests.
func ProcessKeys() (names, prefixes []string) {
	return slices.Clone(processKeyNames[:]), slices.Clone(processKeyPrefixes[:])
}
