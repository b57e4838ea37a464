//! Mail commands: a line `#clore`, `#prendre`, `#annuler` or `#transferer <catégorie>` in the
//! new text of a message.

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Close the thread; the rest of the message is the final answer.
    Clore,
    /// Move the thread to another category (its id, lowercased).
    Transferer(String),
    /// Mark the thread as taken by the sender.
    Prendre,
    /// The requester cancels the request.
    Annuler,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    pub command: Command,
    /// The message without the command line, blank lines at both ends removed.
    pub remaining_text: String,
}

// The text is medical content: Debug shows its size only.
impl std::fmt::Debug for ParsedCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedCommand")
            .field("command", &self.command)
            .field(
                "remaining_text",
                &format_args!("<{} chars>", self.remaining_text.chars().count()),
            )
            .finish()
    }
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Clore => "#clore",
            Command::Transferer(_) => "#transferer",
            Command::Prendre => "#prendre",
            Command::Annuler => "#annuler",
        }
    }
}

/// Finds the first command line in the new text of a message: quoted history is stripped first
/// (`strip_quoted`), so a command quoted from an earlier message is not obeyed again, and the
/// remaining text (for `#clore`, the final answer) holds no history either. A command must be
/// alone on its line (a `#clore` inside a sentence is text); case and accents do not matter
/// (`#Transférer infectio`).
pub fn parse_command(text: &str) -> Option<ParsedCommand> {
    let text = super::quote::strip_quoted(text);
    let lines: Vec<&str> = text.lines().collect();
    let (at, command) = lines.iter().enumerate().find_map(|(i, l)| {
        if l.trim_start().starts_with('>') {
            return None;
        }
        command_line(l).map(|c| (i, c))
    })?;
    let rest: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, l)| *l)
        .collect();
    let first = rest.iter().position(|l| !l.trim().is_empty());
    let last = rest.iter().rposition(|l| !l.trim().is_empty());
    let remaining_text = match (first, last) {
        (Some(f), Some(l)) => rest[f..=l]
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    Some(ParsedCommand {
        command,
        remaining_text,
    })
}

fn command_line(line: &str) -> Option<Command> {
    // `#annuler.` as copied from the acknowledgement's sentence: a final period is no argument.
    let line = line.trim().trim_end_matches(['.', '!']).trim_end();
    let word_end = line.find(char::is_whitespace).unwrap_or(line.len());
    let (word, arg) = (&line[..word_end], line[word_end..].trim());
    let word = crate::form::fold_label(word);
    match (word.as_str(), arg.is_empty()) {
        ("#clore", true) => Some(Command::Clore),
        ("#prendre", true) => Some(Command::Prendre),
        ("#annuler", true) => Some(Command::Annuler),
        ("#transferer", false) if !arg.contains(char::is_whitespace) => {
            Some(Command::Transferer(arg.to_lowercase()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(text: &str) -> Option<(Command, String)> {
        parse_command(text).map(|p| (p.command, p.remaining_text))
    }

    #[test]
    fn a_final_period_is_tolerated() {
        assert_eq!(cmd("#annuler."), Some((Command::Annuler, String::new())));
        assert_eq!(
            cmd("#transferer pneumo.\nMerci"),
            Some((Command::Transferer("pneumo".into()), "Merci".into()))
        );
        assert_eq!(cmd("#clore la demande."), None);
    }

    #[test]
    fn commands_anywhere_alone_on_their_line() {
        assert_eq!(
            cmd("#clore\nPas de traitement si asymptomatique.\nCordialement"),
            Some((
                Command::Clore,
                "Pas de traitement si asymptomatique.\nCordialement".into()
            ))
        );
        assert_eq!(
            cmd("Bonjour,\nVérifier PCR chlamydia.\n\n  #CLORE  \n"),
            Some((Command::Clore, "Bonjour,\nVérifier PCR chlamydia.".into()))
        );
        assert_eq!(cmd("#prendre"), Some((Command::Prendre, String::new())));
        assert_eq!(
            cmd("#Annuler\nLa patiente est hospitalisée."),
            Some((Command::Annuler, "La patiente est hospitalisée.".into()))
        );
        assert_eq!(
            cmd("#transférer Pneumo\nPlutôt pour les pneumologues"),
            Some((
                Command::Transferer("pneumo".into()),
                "Plutôt pour les pneumologues".into()
            ))
        );
        assert_eq!(
            cmd("#TRANSFERER derm-bel-air"),
            Some((Command::Transferer("derm-bel-air".into()), String::new()))
        );
    }

    #[test]
    fn not_commands() {
        assert_eq!(cmd("Je vais #clore demain"), None);
        assert_eq!(cmd("#clore maintenant"), None);
        assert_eq!(cmd("#transferer"), None);
        assert_eq!(cmd("#transferer a b"), None);
        assert_eq!(cmd("#closer"), None);
        assert_eq!(cmd("> #clore\nmerci"), None);
        assert_eq!(
            cmd("Merci.\n\nLe 14/10/2024 à 16:08, Dr Ruch a écrit :\n> #clore\n> Réponse"),
            None
        );
        assert_eq!(
            cmd("Merci.\n-----Message d'origine-----\n#clore\nRéponse"),
            None
        );
        assert_eq!(cmd(""), None);
    }

    #[test]
    fn final_answer_without_history() {
        let text = "#clore\nPas de traitement si asymptomatique.\n\nLe 15/07/2024 à 16:04, Dr X a écrit :\n> Bonjour\n> Merci";
        assert_eq!(
            cmd(text),
            Some((
                Command::Clore,
                "Pas de traitement si asymptomatique.".into()
            ))
        );
    }

    #[test]
    fn debug_hides_the_text() {
        let p = parse_command("#clore\nPas de traitement.").unwrap();
        assert_eq!(
            format!("{p:?}"),
            "ParsedCommand { command: Clore, remaining_text: <18 chars> }"
        );
    }

    #[test]
    fn first_command_wins_and_later_ones_stay_text() {
        assert_eq!(
            cmd("#prendre\n#clore"),
            Some((Command::Prendre, "#clore".into()))
        );
    }
}
