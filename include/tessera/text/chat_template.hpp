// SPDX-License-Identifier: Apache-2.0
// text::chat_template -- ChatML prompts as the Qwen2 / Qwen2.5 tokenizer_config.json chat
// templates and POINTS1.5's construct_prompt render them (messages without tool calls):
//   [<|im_start|>system\n{system}<|im_end|>\n]   (Qwen2.5: a default system message; POINTS1.5: none)
//   <|im_start|>{role}\n{content}<|im_end|>\n      (per message)
//   <|im_start|>assistant\n                         (add_generation_prompt)
#pragma once

#include <tessera/core/error.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tessera::text {

/// One chat turn. role: "system", "user" or "assistant" (the roles the templates know).
struct chat_message {
  std::string role;
  std::string content;
};

/// A ChatML template and the system message it adds when the conversation has none.
struct chat_template {
  /// Rendered as the first turn when messages[0] is not a system message; none = no system turn.
  std::optional<std::string> default_system;

  /// Qwen2.5-Instruct: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
  [[nodiscard]] static chat_template qwen2_5() {
    return {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant."};
  }
  /// Qwen2-Instruct: "You are a helpful assistant."
  [[nodiscard]] static chat_template qwen2() { return {"You are a helpful assistant."}; }
  /// POINTS1.5 (WePOINTS construct_prompt + apply_chat_template): no system turn at all.
  [[nodiscard]] static chat_template points15() { return {std::nullopt}; }

  /// The prompt text for `messages`, ending with the assistant header when add_generation_prompt.
  /// Content is inserted verbatim (special-token text in it stays special when tokenized, as HF).
  /// Throws tessera::error for an unknown role or an empty conversation.
  [[nodiscard]] std::string render(std::span<chat_message const> messages, bool add_generation_prompt = true) const {
    TESSERA_CHECK(!messages.empty(), "text::chat_template: no messages to render");
    std::string out;
    auto turn = [&](std::string_view role, std::string_view content) {
      out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
    };
    if (messages.front().role != "system" && default_system) turn("system", *default_system);
    for (std::size_t i = 0; i < messages.size(); ++i) {
      chat_message const& m = messages[i];
      TESSERA_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant", "text::chat_template: message ",
                    i, " has role '", m.role, "'; the ChatML templates know system, user and assistant");
      turn(m.role, m.content);
    }
    if (add_generation_prompt) out.append("<|im_start|>assistant\n");
    return out;
  }
};

}  // namespace tessera::text
