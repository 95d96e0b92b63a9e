// What a command changed so far, each change with the way to take it back.
// `load` records every step; when a later step fails, the log is destroyed
// uncommitted and takes the steps back newest first, so a failed load leaves
// the node as it found it. Undo steps are best effort: they run on a path
// that is already failing and have nobody to report to.
#pragma once

#include <functional>
#include <utility>
#include <vector>

namespace nodeport {

class UndoLog {
public:
    UndoLog() = default;
    UndoLog(const UndoLog&) = delete;
    UndoLog& operator=(const UndoLog&) = delete;
    ~UndoLog() {
        if (!committed_)
            for (auto step = steps_.rbegin(); step != steps_.rend(); ++step)
                (*step)();
    }

    void add(std::function<void()> undo) { steps_.push_back(std::move(undo)); }

    // Takes over the steps of another log, which is left empty (and
    // committed): they are taken back with this log's.
    void adopt(UndoLog& other) {
        for (auto& step : other.steps_)
            steps_.push_back(std::move(step));
        other.commit();
    }

    // Everything succeeded: keep it.
    void commit() {
        committed_ = true;
        steps_.clear();
    }

private:
    std::vector<std::function<void()>> steps_;
    bool committed_ = false;
};

}  // namespace nodeport
