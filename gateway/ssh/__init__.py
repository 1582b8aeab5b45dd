"""The native SSH listener: ``ssh -p PORT alice+shell-01@gateway`` (``listen.ssh``).

``listener`` accepts and admits connections (network allow list before the SSH banner) and runs
asyncssh on them; ``server`` signs the person in (keyboard-interactive: password, then TOTP, through
the web's login service) and refuses everything but one shell; ``channel`` adapts the SSH session
channel to :class:`~gateway.terminal.OperatorTerminal`; ``shell`` picks the target (name or menu),
decides the policy and runs the terminal session as the browser's terminal does.
"""
