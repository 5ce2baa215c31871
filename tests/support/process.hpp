// Child processes for end-to-end tests: started with posix_spawn, always reaped. The destructor
// sends SIGTERM, waits up to 5 s, then SIGKILLs, so a failing test never leaves one behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace keyless::test {

class Process {
  public:
    // env entries are added to (or replace) the current environment.
    Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
            const std::string& stdout_file = "", const std::string& stderr_file = "");
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    void kill(int signal);
    // Waits for exit; returns the exit status (128+signal if killed), or -1 on timeout.
    int wait(std::chrono::milliseconds timeout);

  private:
    pid_t pid_ = -1;
    int status_ = -1;
};

// Runs a command to completion; returns its exit code and captures stdout+stderr.
int run_command(const std::string& shell_command, std::string* output = nullptr);

std::string read_file(const std::string& path);
// How many times `needle` occurs in `text` (log lines, access log entries).
size_t count_of(const std::string& text, const std::string& needle);
void write_file(const std::string& path, const std::string& content);
// A fresh directory under $TMPDIR, removed with its contents by the destructor.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// Polls until `file` exists and is non-empty, or throws after `timeout`.
std::string wait_for_file(const std::string& file, std::chrono::milliseconds timeout);

} // namespace keyless::test
