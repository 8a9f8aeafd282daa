#include "agent/logging.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"

namespace agent {
namespace {

constexpr const char* kLoggerName = "pfsagentd";
constexpr const char* kPattern = "[%Y-%m-%dT%H:%M:%S.%F%z][%&][%P][%*] %v";

class LevelFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view name;
    switch (msg.level) {
      case spdlog::level::trace: name = "TRACE"; break;
      case spdlog::level::debug: name = "DEBUG"; break;
      case spdlog::level::info: name = "INFO"; break;
      case spdlog::level::warn: name = "WARN"; break;
      case spdlog::level::err: name = "ERROR"; break;
      case spdlog::level::critical: name = "FATAL"; break;
      default: name = "OFF"; break;
    }
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelFlag>();
  }
};

class VolumeFlag final : public spdlog::custom_flag_formatter {
 public:
  explicit VolumeFlag(std::string volume) : volume_(std::move(volume)) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    dest.append(volume_.data(), volume_.data() + volume_.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<VolumeFlag>(volume_);
  }

 private:
  std::string volume_;
};

std::unique_ptr<spdlog::formatter> MakeFormatter(const std::string& volume) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<LevelFlag>('*');
  f->add_flag<VolumeFlag>('&', volume);
  f->set_pattern(kPattern);
  return f;
}

// Opens `path` for append; a newly created file gets mode exactly 0640.
base::Result<int> OpenLogFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd >= 0) {
    ::fchmod(fd, 0640);  // undo a umask that removed bits of 0640
    return fd;
  }
  if (errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return base::Error(err, "cannot open log file \"" + path + "\" (LogFilePath): " +
                                std::strerror(err));
  }
  return fd;
}

// Appends each formatted line with one write(2). Lock: base_sink::mutex_ guards fd_.
class LogFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LogFileSink(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  base::Status Reopen() {
    auto fd = OpenLogFile(path_);  // outside the lock
    if (!fd.ok()) return fd.error();
    base::UniqueFd old;  // closed outside the lock
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = std::move(fd_);
      fd_ = base::UniqueFd(*fd);
    }
    return base::Ok();
  }
  const std::string& path() const { return path_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const char* p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      ssize_t n = ::write(fd_.get(), p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // nowhere to report a failing log file; the console sink still has the line
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  const std::string path_;
  base::UniqueFd fd_;
};

void Install(std::vector<spdlog::sink_ptr> sinks, const std::string& volume,
             spdlog::level::level_enum level) {
  auto logger = std::make_shared<spdlog::logger>(kLoggerName, sinks.begin(), sinks.end());
  logger->set_formatter(MakeFormatter(volume));
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace

void SetUpEarlyLogging() {
  Install({std::make_shared<spdlog::sinks::stderr_sink_mt>()}, "-", spdlog::level::info);
}

base::Status SetUpLogging(const AgentConfig& config) {
  std::vector<spdlog::sink_ptr> sinks;
  if (!config.LogFilePath.empty()) {
    auto fd = OpenLogFile(config.LogFilePath);
    if (!fd.ok()) return fd.error();
    sinks.push_back(std::make_shared<LogFileSink>(config.LogFilePath, *fd));
  }
  if (config.LogToConsole) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  Install(std::move(sinks), config.FUSEVolumeName,
          config.TraceEnabled ? spdlog::level::trace : spdlog::level::info);
  return base::Ok();
}

void ReopenLogFile() {
  auto logger = spdlog::default_logger();
  for (const auto& sink : logger->sinks()) {
    auto file = std::dynamic_pointer_cast<LogFileSink>(sink);
    if (!file) continue;
    base::Status st = file->Reopen();
    if (st.ok()) {
      spdlog::info("log file {} reopened", file->path());
    } else {
      spdlog::warn("{}; still writing to the previous file", st.error().Message());
    }
  }
}

void LogEffectiveConfig(const AgentConfig& config) {
  spdlog::info("configuration (PlugInEnvValue redacted):\n{}", ConfigToJson(config, true));
}

}  // namespace agent
