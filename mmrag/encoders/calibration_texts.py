"""Texts that calibrate the int8 graphs: queries and passages of many kinds, written for mmrag.

Only the largest activation of each channel is read from them (``onnx_smooth``), and those
outlier channels are a property of the model, not of the text, so a few dozen varied texts
suffice. None of them comes from an evaluation set.
"""

CALIBRATION_TEXTS = (
    "how long does it take for a broken wrist to heal",
    "what is the difference between a stock and a bond?",
    "symptoms of vitamin d deficiency in adults",
    "who wrote the declaration of independence",
    "best way to store fresh herbs in the fridge",
    "Does metformin lower the risk of cancer in type 2 diabetes?",
    "python list comprehension with two conditions",
    "Revenue for the third quarter was $4.2 billion, up 7% year over year, while operating margin "
    "narrowed to 18.5% because of higher freight costs and a one-time restructuring charge.",
    "The mitochondrion is the organelle in which oxidative phosphorylation takes place. Electrons "
    "pass along the inner membrane, and the energy released pumps protons that drive ATP synthase.",
    "Table 3: Results on the validation set. Model | Accuracy | F1 ; Baseline | 71.2 | 68.9 ; "
    "Ours (no pretraining) | 74.8 | 72.1 ; Ours | 79.3 | 77.6",
    "In 1848 a wave of revolutions spread across Europe. Liberal and national movements demanded "
    "constitutions, a free press and the end of feudal dues, but most were suppressed within two years.",
    "To reset the device, hold the power button for ten seconds until the LED blinks twice, then "
    "release it. Do not unplug the charger while the firmware update is in progress.",
    "The tenant shall pay the rent on the first day of each month. If payment is more than five days "
    "late, a fee of 5% of the monthly rent applies, and repeated late payment is grounds for termination.",
    "Patients randomised to the intervention arm (n = 412) received 20 mg daily for 12 weeks; the "
    "primary endpoint, change in LDL cholesterol, fell by 38% (95% CI 33-43) versus 4% with placebo.",
    "The striker scored twice in the second half, and the home side held on for a 3-2 win despite "
    "playing the last twenty minutes with ten men after a red card.",
    "Photosynthesis converts light energy into chemical energy: carbon dioxide and water become "
    "glucose and oxygen in the chloroplasts of plant cells.",
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0] else b.pop(0))\n"
    "    return out + a + b",
    "Figure 2 shows the number of monthly active users by region from 2015 to 2020. Asia grew "
    "fastest, while North America stayed flat at around 180 million.",
    "I ordered the blue one but they sent me a green jacket, and customer service has not replied "
    "to my emails for a week. Really disappointed.",
    "The committee recommends that the board approve the budget for fiscal year 2024, subject to "
    "the conditions listed in Annex B, and review the capital plan again in six months.",
    "Quantum entanglement describes a state in which the measurement outcomes of two particles "
    "remain correlated no matter how far apart they are.",
    "what are the side effects of ibuprofen",
    "GDP per capita (current US$) - Germany 48,718; France 43,659; Italy 35,657; Spain 31,223.",
    "The recipe needs 200 g of flour, two eggs, 250 ml of milk and a pinch of salt. Whisk until "
    "smooth and let the batter rest for thirty minutes before frying.",
    "Section 4.2 Safety. Wear protective gloves when handling the battery pack. Never expose it to "
    "temperatures above 60 °C or to open flame.",
    "how many moons does jupiter have",
    "Our results suggest that sleep deprivation impairs working memory more than long-term recall, "
    "although the effect size was small (d = 0.21) and did not survive correction for multiple tests.",
    "The company was founded in a garage in 1976 and went public four years later; today it employs "
    "over 150,000 people in more than 50 countries.",
    "ERROR 1045 (28000): Access denied for user 'root'@'localhost' (using password: YES)",
    "When the Federal Reserve raises interest rates, borrowing becomes more expensive, which tends "
    "to slow consumer spending and business investment.",
    "Q: What was the net income in 2019? A: Net income was 1,234 million euros, compared with 987 "
    "million euros in 2018.",
    "The river rises in the mountains to the north, flows south through a narrow gorge and reaches "
    "the sea after 340 kilometres, draining an area of about 12,000 square kilometres.",
    "Antibiotic resistance arises when bacteria acquire genes, often on plasmids, that let them "
    "survive drugs that would otherwise kill them.",
    "Click 'Settings', then 'Privacy & Security', and turn off location access for apps you do not use.",
    "The novel follows three generations of a family of fishermen on a remote island, told through "
    "letters that the youngest daughter finds in the attic after her grandmother's death.",
    "is it safe to drink coffee during pregnancy",
    "Amendment No. 2 to the Credit Agreement, dated as of March 31, 2021, among the Borrower, the "
    "Lenders party hereto and the Administrative Agent.",
    "Students who attended the tutoring program scored on average 12 points higher on the final "
    "exam, but attendance was voluntary, so the comparison may be biased.",
    "The algorithm runs in O(n log n) time and uses O(n) extra memory; for nearly sorted input an "
    "insertion sort is faster in practice.",
    "Temperatures will drop below freezing overnight, with snow showers likely in the hills and "
    "gusts of up to 70 km/h along the coast.",
)
