# Prompts in other scripts and full-width punctuation are the point here; some are long.
# ruff: noqa: RUF001, E501
"""The default model on prompts in other languages, written for this test (not in the corpus).

Ten prompts per language the corpus covers, with the tier the labelling standard gives them:
a sensible share must come out right. Prompts in scripts the corpus has (almost) no words of
must not get a confident answer: the model's probabilities are tempered by the share of a
prompt's words it knows (see :mod:`classifier_service.classifier`).
"""

from __future__ import annotations

import pytest

from classifier_service.routing.policy import classifier_choice
from classifier_service.runtime import Runtime

LANGUAGE_PROMPTS: dict[str, list[tuple[str, str]]] = {
    "de": [
        ("Ist diese Nachricht freundlich oder unhöflich? \"Schick mir endlich die Unterlagen.\"", "simple"),
        ("Übersetze \"Guten Appetit\" ins Spanische", "simple"),
        ("Welche Telefonnummer steht in der Mail? \"Ruf mich unter 0171 2345678 an.\"", "simple"),
        ("Wie entsteht ein Regenbogen?", "medium"),
        ("Schreib eine kurze Mail an das Team, dass das Meeting morgen ausfällt.", "medium"),
        ("Gib mir ein paar Ideen für ein günstiges Abendessen", "medium"),
        ("Fass den Inhalt von Kafkas Die Verwandlung kurz zusammen", "medium"),
        ("Schreib eine Kurzgeschichte über einen Leuchtturmwärter, der einen Brief aus der Zukunft bekommt.", "complex"),
        ("Analysiere die Vor- und Nachteile einer Tempolimit-Einführung auf deutschen Autobahnen aus ökonomischer und ökologischer Sicht.", "complex"),
        ("Drei Handwerker brauchen zusammen 6 Tage für ein Dach. Wie lange brauchen fünf, wenn einer nur halb so schnell ist? Rechne Schritt für Schritt.", "complex"),
    ],
    "fr": [
        ("Ce commentaire est-il positif ou négatif ? « Service rapide et personnel adorable »", "simple"),
        ("Traduis « bonne nuit » en allemand", "simple"),
        ("Quelle est l'adresse dans ce message ? « Rendez-vous au 12 rue Victor Hugo, Lyon. »", "simple"),
        ("Pourquoi les chats ronronnent-ils ?", "medium"),
        ("Écris un message à ma voisine pour lui demander de garder mon colis.", "medium"),
        ("Des idées d'activités pour un anniversaire d'enfant de 6 ans ?", "medium"),
        ("Résume l'histoire du Petit Prince en quelques phrases", "medium"),
        ("Écris un poème sur l'automne en Provence, en alexandrins.", "complex"),
        ("Analyse les conséquences économiques et sociales de la semaine de quatre jours pour une entreprise industrielle.", "complex"),
        ("Un train part de Paris à 8h à 200 km/h, un autre de Marseille (750 km) à 9h à 250 km/h. À quelle heure se croisent-ils ? Détaille le calcul.", "complex"),
    ],
    "es": [
        ("¿Este comentario es positivo o negativo? \"La comida llegó fría y tarde\"", "simple"),
        ("Traduce \"buenos días\" al francés", "simple"),
        ("¿Qué número de teléfono aparece? \"Llámame al 612 345 678 mañana\"", "simple"),
        ("¿Por qué el mar es salado?", "medium"),
        ("Escribe un correo a mi jefe para pedir el viernes libre.", "medium"),
        ("Dame ideas para decorar un piso pequeño", "medium"),
        ("Resume la historia de Don Quijote en pocas frases", "medium"),
        ("Escribe un cuento sobre un faro abandonado y una niña que lo vuelve a encender.", "complex"),
        ("Analiza los pros y contras de subir el salario mínimo en España para las pequeñas empresas y los trabajadores.", "complex"),
        ("Un grifo llena un depósito en 6 horas y otro lo vacía en 9. Si abrimos ambos, ¿cuánto tarda en llenarse? Explica el razonamiento.", "complex"),
    ],
    "ja": [
        ("この口コミはポジティブですか？「スタッフの対応が最悪でした」", "simple"),
        ("「ありがとう」を英語に翻訳して", "simple"),
        ("このメールから電話番号を抜き出して：「ご連絡は090-1234-5678までお願いします」", "simple"),
        ("なぜ秋になると葉っぱが赤くなるの？", "medium"),
        ("取引先に打ち合わせの日程変更をお願いするメールを書いて", "medium"),
        ("雨の日に家でできる遊びのアイデアをください", "medium"),
        ("『走れメロス』のあらすじを短く教えて", "medium"),
        ("雪の降る町を舞台にした短編小説を書いてください。最後に意外な展開を入れて。", "complex"),
        ("日本企業がジョブ型雇用に移行する利点と課題を、労働市場と企業文化の観点から分析してください。", "complex"),
        ("りんごとみかんを合わせて20個買い、代金は1900円でした。りんごは1個120円、みかんは1個80円です。それぞれ何個買いましたか？考え方も説明して。", "complex"),
    ],
    "zh": [
        ("这条评价是好评还是差评？\"味道一般，价格还贵\"", "simple"),
        ("把\"谢谢你\"翻译成英文", "simple"),
        ("提取这段话里的电话号码：\"有问题请拨打13812345678联系我\"", "simple"),
        ("为什么秋天树叶会变黄？", "medium"),
        ("帮我写一封邮件，通知同事明天的会议改到下午", "medium"),
        ("周末在家可以做些什么放松的事情", "medium"),
        ("简单概括一下《西游记》的故事", "medium"),
        ("写一篇关于一个老灯塔守护人的短篇小说，结尾要出人意料", "complex"),
        ("分析一下人工智能对中国制造业就业的影响，并提出政策建议", "complex"),
        ("鸡兔同笼，共有35个头，94只脚，鸡和兔各有多少只？请写出详细的推理过程。", "complex"),
    ],
    "ru": [
        ("Отзыв положительный или отрицательный? «Еда остыла, официант грубил»", "simple"),
        ("Переведи «спасибо большое» на немецкий", "simple"),
        ("Найди номер телефона в сообщении: «Звоните мне по номеру 8 912 345-67-89»", "simple"),
        ("Почему зимой бывает гололёд?", "medium"),
        ("Напиши письмо коллегам, что встреча переносится на четверг.", "medium"),
        ("Подскажи идеи, чем заняться дома в дождливый день", "medium"),
        ("Кратко перескажи сюжет «Мастера и Маргариты»", "medium"),
        ("Напиши рассказ о смотрителе маяка, который получил письмо из будущего.", "complex"),
        ("Проанализируй плюсы и минусы перехода на удалённую работу для небольшой IT-компании с точки зрения продуктивности и культуры.", "complex"),
        ("В бассейн ведут две трубы: первая наполняет его за 6 часов, вторая за 4 часа. За сколько часов они наполнят его вместе? Распиши решение.", "complex"),
    ],
}

UNSEEN_SCRIPTS = [
    "이 리뷰는 긍정적인가요 부정적인가요? \"배송이 너무 늦었어요\"",  # Korean
    "안녕하세요, 오늘 날씨 어때요?",
    "यह समीक्षा सकारात्मक है या नकारात्मक?",  # Hindi
    "Γιατί ο ουρανός είναι μπλε;",  # Greek
    "ما هي عاصمة فرنسا؟",  # Arabic
    "รีวิวนี้เป็นบวกหรือลบ",  # Thai
    "Bu yorum olumlu mu olumsuz mu? \"Kargo çok geç geldi\"",  # Turkish (Latin, unseen words)
]


@pytest.mark.parametrize("language", sorted(LANGUAGE_PROMPTS))
def test_prompts_in_corpus_languages_get_sensible_tiers(runtime: Runtime, language: str
                                                         ) -> None:
    rows = LANGUAGE_PROMPTS[language]
    right = [runtime.classifier.score(p).top_tier == tier for p, tier in rows]
    assert sum(right) >= 7, f"{language}: {sum(right)} of {len(rows)} right"


def test_all_languages_together(runtime: Runtime) -> None:
    rows = [row for rows in LANGUAGE_PROMPTS.values() for row in rows]
    right = sum(runtime.classifier.score(p).top_tier == tier for p, tier in rows)
    assert right / len(rows) >= 0.8


@pytest.mark.parametrize("prompt", UNSEEN_SCRIPTS)
def test_unseen_scripts_get_low_confidence(runtime: Runtime, prompt: str) -> None:
    scores = runtime.classifier.score(prompt)
    assert max(scores.tiers.values()) <= 0.5
    assert scores.categories is not None and max(scores.categories.values()) <= 0.5
    # the policy then defaults to the cheaper tier, with the fallback chain above it
    _, reason, _ = classifier_choice(scores.tiers, runtime.artifact.tier_labels,
                                        runtime.confidence_threshold)
    assert reason == "default_cheaper"


def test_no_prompt_of_a_known_language_is_certain_and_wrong(runtime: Runtime) -> None:
    for rows in LANGUAGE_PROMPTS.values():
        for prompt, tier in rows:
            scores = runtime.classifier.score(prompt)
            if scores.top_tier != tier:
                assert max(scores.tiers.values()) <= 0.9, prompt
