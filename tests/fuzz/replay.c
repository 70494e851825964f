/* Replays every file of the seed-corpus directories given as arguments through a fuzz target. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size > (16 << 20)) {
		fprintf(stderr, "replay: %s: not a regular file under 16 MiB\n", path);
		fclose(f);
		return -1;
	}
	/* An exact-size heap copy lets ASan catch a read one byte past the input. */
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n ? n : 1);
	int ret = -1;
	if (buf && fread(buf, 1, n, f) == n) {
		LLVMFuzzerTestOneInput(buf, n);
		ret = 0;
	}
	free(buf);
	fclose(f);
	return ret;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int files = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		char **names = NULL;
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char **tmp = realloc(names, (n + 1) * sizeof(*names));
			if (!tmp)
				return 1;
			names = tmp;
			names[n++] = strdup(e->d_name);
		}
		closedir(d);
		qsort(names, n, sizeof(*names), by_name);
		for (size_t j = 0; j < n; j++) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]);
			if (replay_file(path) != 0)
				failed++;
			files++;
			free(names[j]);
		}
		free(names);
	}
	printf("replayed %d inputs, %d unreadable\n", files, failed);
	if (files == 0) {
		fprintf(stderr, "replay: empty corpus\n");
		return 1;
	}
	return failed ? 1 : 0;
}
