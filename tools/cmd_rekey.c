/*
 * vaultctl rekey: re-encrypt every object and metadata value of a dataset under its
 * newest key version, through the key agent, and follow the run until it ends: the
 * agent does it offline, or asks the mount's daemon to do it online. Interrupting
 * vaultctl stops only the following; 'vaultctl rekey NAME' again follows (or resumes) it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/protocol.h"
#include "tools/vaultctl.h"

#define POLL_INTERVAL_MS 250
#define BAR_WIDTH 30
#define EXIT_INTERRUPTED 130

static const char synopsis[] = "rekey [--agent SOCKET] NAME";

static const char help[] =
	"Re-encrypt every object and metadata value of dataset NAME under its newest key\n"
	"version (after 'vaultctl key rotate NAME'), so that older versions can be retired\n"
	"with 'vaultctl key retire'. A mounted dataset is rekeyed online by its mount; an\n"
	"unmounted one offline by the key agent, which refuses mounts until it is done.\n"
	"vaultctl follows the run, with a progress bar on a terminal; interrupting it leaves\n"
	"the run going, and 'vaultctl rekey NAME' follows it again (or resumes a run that\n"
	"was cut short). Needs the 'rotate' privilege on the dataset.\n\n"
	"  --agent SOCKET   the key agent's socket (as the global option)\n"
	"  -h, --help       show this text\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int signo)
{
	(void)signo;
	interrupted = 1;
}

/* SIGINT and SIGTERM end the following, not the run; no SA_RESTART, so a wait ends. */
static void catch_signals(void)
{
	struct sigaction action = { .sa_handler = on_signal };

	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
}

static void pause_ms(int ms)
{
	struct timespec wait = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	/* A signal cuts it short: interrupted says so. */
	nanosleep(&wait, NULL);
}

/* The agent's text: who does the run ("offline", "online (mounted by pid N)"), then
 * ": why" when it failed. */
static void split_text(const char *text, char *who, size_t who_len, const char **why)
{
	const char *colon = strstr(text, ": ");
	size_t len = colon ? (size_t)(colon - text) : strlen(text);

	if (len >= who_len)
		len = who_len - 1;
	memcpy(who, text, len);
	who[len] = '\0';
	*why = colon ? colon + 2 : "";
}

static unsigned percent(const struct protocol_rekey *rekey)
{
	if (rekey->total == 0)
		return rekey->state == PROTOCOL_REKEY_DONE ? 100 : 0;
	return (unsigned)(rekey->done * 100 / rekey->total);
}

static void draw_bar(const char *name, const struct protocol_rekey *rekey, const char *who)
{
	char bar[BAR_WIDTH + 1];
	unsigned filled = percent(rekey) * BAR_WIDTH / 100;

	for (unsigned i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	/* \033[K: the rest of a longer previous line goes. */
	fprintf(stderr, "\rrekey '%s' to key version %" PRIu32 " [%s] %3u%% %" PRIu64 "/%" PRIu64
		" %s\033[K", name, rekey->version, bar, percent(rekey), rekey->done, rekey->total,
		rekey->state == PROTOCOL_REKEY_REQUESTED ? "waiting for the mount" : who);
	fflush(stderr);
}

/* Ask the agent about name's run (version 0: start one, or attach to the one going). */
static int ask(const char *name, uint32_t version, struct protocol_rekey *rekey, char *text,
	       size_t text_len)
{
	struct protocol_message request = { .type = PROTOCOL_REKEY, .version = version };
	struct protocol_message reply;
	int status;

	snprintf(request.name, sizeof(request.name), "%s", name);
	status = vaultctl_agent_request(&request, &reply, "rekey", name, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	*rekey = reply.rekey;
	snprintf(text, text_len, "%s", reply.text);
	protocol_message_release(&reply);
	if (rekey->state == 0 || rekey->version == 0)
		return vaultctl_error("the agent's answer about the rekey of '%s' says nothing: "
				      "is the agent older than vaultctl?", name);
	return VAULTCTL_EXIT_OK;
}

int cmd_rekey(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct protocol_rekey rekey;
	char text[PROTOCOL_TEXT_MAX + 1], who[PROTOCOL_TEXT_MAX + 1];
	const char *name, *why;
	bool terminal = isatty(STDERR_FILENO) == 1;
	bool drawn = false;
	int status, opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (optarg[0] == '\0')
				return vaultctl_usage_error(synopsis, "--agent needs the path of the "
							    "agent's socket");
			vaultctl_set_agent_socket(optarg);
			break;
		case 'h':
			return vaultctl_usage(synopsis, help);
		case ':':
			return vaultctl_usage_error(synopsis, "'%s' needs a value", argv[optind - 1]);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'", argv[optind - 1]);
		}
	}
	status = vaultctl_one_dataset_name(synopsis, argc - optind, argv + optind,
					   "the dataset to rekey");
	if (status != 0)
		return status;
	name = argv[optind];

	catch_signals();
	status = ask(name, 0, &rekey, text, sizeof(text));
	if (status != VAULTCTL_EXIT_OK)
		return status;
	split_text(text, who, sizeof(who), &why);
	if (!terminal)
		fprintf(stderr, "rekeying dataset '%s' to key version %" PRIu32 ": %s\n", name,
			rekey.version, who);
	while (rekey.state == PROTOCOL_REKEY_REQUESTED || rekey.state == PROTOCOL_REKEY_RUNNING) {
		if (terminal) {
			draw_bar(name, &rekey, who);
			drawn = true;
		}
		if (!interrupted)
			pause_ms(POLL_INTERVAL_MS);
		if (interrupted) {
			if (drawn)
				fputc('\n', stderr);
			fprintf(stderr, "stopped following: the rekey of '%s' goes on %s; run "
				"'vaultctl rekey %s' to follow it again\n", name,
				strncmp(who, "online", 6) == 0 ? "in the mount" : "in the key agent",
				name);
			return EXIT_INTERRUPTED;
		}
		status = ask(name, rekey.version, &rekey, text, sizeof(text));
		if (status != VAULTCTL_EXIT_OK)
			return status;
		split_text(text, who, sizeof(who), &why);
	}
	if (drawn) {
		draw_bar(name, &rekey, who);
		fputc('\n', stderr);
	}
	if (rekey.state != PROTOCOL_REKEY_DONE)
		return vaultctl_error("the rekey of dataset '%s' to key version %" PRIu32 " failed "
				      "after %" PRIu64 " of %" PRIu64 " items (%s): %s", name,
				      rekey.version, rekey.done, rekey.total, who,
				      why[0] ? why : "see the agent's log");
	printf("dataset '%s' rekeyed: %" PRIu64 " items now under key version %" PRIu32 "; "
	       "retire older versions with 'vaultctl key retire'\n", name, rekey.done,
	       rekey.version);
	return VAULTCTL_EXIT_OK;
}
