/*
 * The plain driver of a fuzz target: without SCRM_LIBFUZZER, a main() that
 * runs LLVMFuzzerTestOneInput over every file of the files and directories
 * it is given (the corpus run of suite 'fuzz'), and fails when one fails
 * or when there was none. Include it last, after defining FUZZ_NAME (the
 * target's name) and, if the target keeps state to release at the end,
 * FUZZ_AT_EXIT().
 */
#ifndef SCRM_LIBFUZZER

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_AT_EXIT
#define FUZZ_AT_EXIT() ((void)0)
#endif

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				fclose(f);
				return 1;
			}
			buf = b;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int run_path(const char *path, int *count)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	DIR *d = opendir(path);
	if (!d) {
		perror(path);
		return 1;
	}
	int failed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		size_t len = strlen(path) + strlen(de->d_name) + 2;
		char *sub = malloc(len);
		if (!sub) {
			failed = 1;
			break;
		}
		snprintf(sub, len, "%s/%s", path, de->d_name);
		failed |= run_path(sub, count);
		free(sub);
	}
	closedir(d);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
		return 2;
	}
	int failed = 0, count = 0;
	for (int i = 1; i < argc; i++)
		failed |= run_path(argv[i], &count);
	printf("%s_fuzzer: %d input%s\n", FUZZ_NAME, count, count == 1 ? "" : "s");
	FUZZ_AT_EXIT();
	return failed || count == 0;
}
#endif
